// The compatibility database (src/db): records and their validation, the HF cache path, the CLI
// (add, lookup, list, export, import, merge), local measurements against imported ones, and the
// load-time decision reading it. Faults (concurrent writers, SIGKILL, damage, read-only) are in
// test_db_faults.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "check/check.h"
#include "db/database.h"
#include "db/exchange.h"
#include "db/model_id.h"
#include "db/store.h"
#include "engine/kernel_select.h"
#include "fixture/fixture.h"
#include "probe/probe_report.h"
#include "testing.h"

namespace fusecheck {
namespace {

using json = nlohmann::json;
using testing::read_text;
using testing::run_cli;
using testing::TempDir;
using testing::write_text;

std::string make_model(const TempDir& t, const std::string& name, const std::string& profile) {
  auto r = run_cli("fixture " + (t / name) + " --profile " + profile + " --tiny");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return t / name;
}

size_t testing_count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

CheckResult checked(const std::string& dir, const std::string& kernels) {
  CheckOptions o;

  o.use_cache = false;
  o.kernels = kernels;
  auto r = check_model(dir, o);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return *r;
}

// A measurement as the probe reports it; the store keeps whatever it is given.
ProbeResult measurement(const std::string& profile, Verdict v, double kl) {
  ProbeResult p;
  p.profile = profile;
  p.sequences = 4, p.positions = 128;
  p.fused_vs_standard.kl_mean = kl;
  p.layers.resize(3, LayerError{1e-3, 2e-3, 1e-3, 1.5e-3});
  p.verdict = v;
  p.reason = "test measurement";
  return p;
}

TEST(DbRecord, RoundTripsAndRejectsEveryBadField) {
  TempDir t;
  const CheckResult c = checked(make_model(t, "m", "qwen3-0.6b-extreme"), "generic");
  const ProbeResult p = measurement("generic", Verdict::kIncompatible, 0.25);
  DbRecord r = local_record(c, &p, {"Qwen/Qwen3-0.6B", "abc123"});
  const json j = record_to_json(r);
  auto back = record_from_json(j);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->key, r.key);
  EXPECT_EQ(back->model_name, "Qwen/Qwen3-0.6B");
  EXPECT_EQ(back->static_verdict(), "INCOMPATIBLE");
  EXPECT_EQ(back->measured_verdict(), "INCOMPATIBLE");
  EXPECT_EQ(back->measured_kl(), 0.25);
  EXPECT_EQ(back->static_result->at("model_path"), "") << "a local path must not be shared";
  // Each field broken in turn: the error names it.
  std::vector<std::pair<std::string, json>> bad = {
      {"schema", "fusecheck.db/2"},
      {"fingerprint", "XYZ"},
      {"fingerprint", std::string(32, 'a') + "0"},
      {"kernels", "fused; rm -rf /"},
      {"profile_hash", 7},
      {"device", "<script>"},
      {"analysis_revision", -1},
      {"probe_revision", "1"},
      {"model", {{"name", "a b"}, {"revision", ""}}},
      {"static", {{"schema", "fusecheck.check/1"}}},
      {"probe", {{"schema", "fusecheck.probe/1"}, {"verdict", "COMPATIBLE"}}},
      {"tool_version", ""},
      {"date", "yesterday"},
      {"source", 3},
      {"source", "\x1b[2Jlocal"}};
  for (const auto& [field, value] : bad) {
    json b = j;
    b[field] = value;
    auto e = record_from_json(b);
    ASSERT_FALSE(e.ok()) << field;
    const std::string want = field == "model" ? "model.name" : field;
    EXPECT_NE(e.error().message.find(want), std::string::npos) << e.error().message;
  }
  // A static result of another checkpoint under this key.
  json other = j;
  other["fingerprint"] = std::string(32, 'a');
  EXPECT_FALSE(record_from_json(other).ok());
  json neither = j;
  neither["static"] = nullptr, neither["probe"] = nullptr;
  EXPECT_FALSE(record_from_json(neither).ok());
}

TEST(DbModelId, FromTheHfCachePath) {
  auto id = identity_from_path(
      "/root/.cache/huggingface/hub/models--Qwen--Qwen3-0.6B/snapshots/"
      "c1899de289a04d12100db370d81485cdf75e47ca/");
  EXPECT_EQ(id.name, "Qwen/Qwen3-0.6B");
  EXPECT_EQ(id.revision, "c1899de289a04d12100db370d81485cdf75e47ca");
  EXPECT_EQ(identity_from_path("hub/models--gpt2/snapshots/r1").name, "gpt2");
  EXPECT_EQ(identity_from_path("/models/qwen3").name, "");
  EXPECT_EQ(identity_from_path("models--a--b/blobs/x").name, "");
}

TEST(DbStore, LocalMeasurementWinsUnlessImportedIsPreferred) {
  TempDir t;
  const CheckResult c = checked(make_model(t, "m", "qwen3-0.6b"), "fused");
  auto db = Database::open(t / "db/f.db");
  ASSERT_TRUE(db.ok()) << db.error().message;
  EXPECT_FALSE(db->read_only());
  const ProbeResult local = measurement("fused", Verdict::kCompatible, 1e-5);
  ASSERT_TRUE(db->put_local(local_record(c, &local, {})).ok());
  // Someone else measured the same checkpoint and calls it INCOMPATIBLE.
  const ProbeResult theirs = measurement("fused", Verdict::kIncompatible, 0.5);
  DbRecord imported = local_record(c, &theirs, {"org/model", "r2"});
  imported.source = "imported from theirs.jsonl";
  auto s = db->put_imported({imported}, false);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->kept_local, 1);
  auto m = find_measurement(*db, c.fingerprint, c.kernels);
  ASSERT_TRUE(m.ok() && m->has_value());
  EXPECT_EQ((*m)->record.measured_verdict(), "COMPATIBLE");
  EXPECT_EQ((*m)->origin(), "probe");
  s = db->put_imported({imported}, true);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->replaced, 1);
  m = find_measurement(*db, c.fingerprint, c.kernels);
  EXPECT_EQ((*m)->record.measured_verdict(), "INCOMPATIBLE");
  EXPECT_EQ((*m)->origin(), "database");
  EXPECT_EQ((*m)->record.source, "imported from theirs.jsonl");
  // A later local static result keeps the stored measurement and its origin.
  ASSERT_TRUE(db->put_local(local_record(c, nullptr, {})).ok());
  m = find_measurement(*db, c.fingerprint, c.kernels);
  EXPECT_EQ((*m)->origin(), "database");
  EXPECT_EQ((*m)->record.model_name, "org/model");
  // Another profile or device is another key: no measurement.
  auto other = find_measurement(*db, c.fingerprint, c.kernels, "cuda:0");
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->has_value());
}

// Eight threads, each with its own connection, write and read at once (run under TSan too).
TEST(DbThreads, ConnectionsInSeveralThreads) {
  TempDir t;
  const CheckResult c = checked(make_model(t, "m", "qwen3-0.6b"), "fused");
  const std::string path = t / "f.db";
  ASSERT_TRUE(Database::open(path).ok());
  std::vector<std::thread> threads;
  std::vector<int> failures(8, 0);
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      auto db = Database::open(path);
      if (!db) return void(++failures[i]);
      for (int k = 0; k < 4; ++k) {
        DbRecord r = local_record(c, nullptr, {}, "dev" + std::to_string(i));
        if (!db->put_local(r) || !db->find("", "")) ++failures[i];
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, std::vector<int>(8, 0));
  auto all = Database::open(path, DbMode::kReadOnly)->find(c.fingerprint, "");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 8u);
}

class DbCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ok_ = make_model(t_, "ok", "qwen3-0.6b");
    bad_ = make_model(t_, "bad", "qwen3-0.6b-extreme");
  }
  testing::RunResult db(const std::string& args, const std::string& file = "a.db") {
    return run_cli("db " + args + " --db " + (t_ / file));
  }
  TempDir t_;
  std::string ok_, bad_;
};

TEST_F(DbCli, AddLookupListExportImport) {
  auto add = db("add " + bad_ + " --kernels generic --name org/bad --revision r1");
  ASSERT_EQ(add.exit_code, 0) << add.err;
  EXPECT_NE(add.out.find("org/bad@r1"), std::string::npos) << add.out;
  EXPECT_NE(add.out.find("static INCOMPATIBLE"), std::string::npos) << add.out;
  ASSERT_EQ(db("add " + ok_ + " --kernels fused").exit_code, 0);
  // By folder (its fingerprint), by name, by fingerprint prefix; --kernels filters.
  const std::string fp = checked(bad_, "generic").fingerprint;
  for (const std::string& q : {bad_, std::string("org/bad"), fp.substr(0, 10)}) {
    auto l = db("lookup " + q + " --json");
    ASSERT_EQ(l.exit_code, 0) << q << l.err;
    auto j = json::parse(l.out);
    ASSERT_EQ(j["records"].size(), 1u) << q;
    EXPECT_EQ(j["records"][0]["fingerprint"], fp);
    EXPECT_EQ(j["records"][0]["static"]["verdict"], "INCOMPATIBLE");
    EXPECT_EQ(j["records"][0]["verdict_from"], "static");
    EXPECT_TRUE(j["records"][0]["current"].get<bool>());
  }
  EXPECT_EQ(db("lookup org/bad --kernels fused").exit_code, 1);
  EXPECT_EQ(db("lookup nobody/nothing").exit_code, 1);
  auto list = db("list");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("2 records in"), std::string::npos) << list.out;
  // Export, then import into an empty database: the same records, marked as imported.
  ASSERT_EQ(db("export " + (t_ / "x.jsonl")).exit_code, 0);
  const std::string text = read_text(t_ / "x.jsonl");
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
  auto imp = db("import " + (t_ / "x.jsonl"), "b.db");
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  EXPECT_NE(imp.out.find("2 added"), std::string::npos) << imp.out;
  auto a = json::parse(db("list --json").out)["records"];
  auto b = json::parse(db("list --json", "b.db").out)["records"];
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(b[i]["source"], "imported from x.jsonl");
    a[i].erase("source"), b[i].erase("source");
    EXPECT_EQ(a[i], b[i]);
  }
  // The HTML page: one section per record, one mark per layer in each.
  ASSERT_EQ(db("export " + (t_ / "x.html") + " --html").exit_code, 0);
  const std::string html = read_text(t_ / "x.html");
  EXPECT_EQ(testing_count(html, "<section class=\"report\""), 2u);
  EXPECT_EQ(testing_count(html, "class=\"layer-mark\""), 2u * 28);
  // Merge a database file: nothing new, and the local ones stay local.
  auto merge = db("merge " + (t_ / "b.db"));
  ASSERT_EQ(merge.exit_code, 0) << merge.err;
  EXPECT_NE(merge.out.find("0 added, 0 replaced, 2 kept"), std::string::npos) << merge.out;
}

TEST_F(DbCli, ImportRejectsBadLinesByNumberAndKeepsTheGoodOnes) {
  ASSERT_EQ(db("add " + bad_ + " --kernels generic").exit_code, 0);
  ASSERT_EQ(db("export " + (t_ / "x.jsonl")).exit_code, 0);
  const std::string good = read_text(t_ / "x.jsonl");
  json tampered = json::parse(good);
  tampered["static"]["verdict"] = "MAYBE";
  write_text(t_ / "y.jsonl", "not json at all\n" + good + "\n" + tampered.dump() +
                                 "\n{\"schema\":\"fusecheck.db/1\",\"$(reboot)\":1}\n");
  auto imp = db("import " + (t_ / "y.jsonl"), "c.db");
  EXPECT_EQ(imp.exit_code, 3);
  for (const char* line : {"y.jsonl:1: not a JSON value", "y.jsonl:4: \"static\"", "y.jsonl:5: "})
    EXPECT_NE(imp.err.find(line), std::string::npos) << line << "\n" << imp.err;
  EXPECT_EQ(imp.err.find("y.jsonl:2:"), std::string::npos) << imp.err;
  EXPECT_NE(imp.out.find("1 added"), std::string::npos) << imp.out;
  EXPECT_EQ(db("lookup " + bad_, "c.db").exit_code, 0);
  EXPECT_EQ(db("import " + (t_ / "missing.jsonl"), "c.db").exit_code, 3);
}

TEST_F(DbCli, ModelCardFromCheckAndFromTheDatabase) {
  auto card = run_cli("check " + bad_ + " --no-cache --kernels generic --format model-card");
  EXPECT_EQ(card.out.rfind("---\ntags:\n- fused-kernels-incompatible\nfusecheck:\n  status: "
                           "INCOMPATIBLE\n",
                           0),
            0u)
      << card.out;
  EXPECT_NE(card.out.find("    \"generic\":\n      verdict: INCOMPATIBLE\n      source: static\n"),
            std::string::npos)
      << card.out;
  EXPECT_NE(card.out.find("## Fused-kernel compatibility"), std::string::npos);
  auto ok_card = run_cli("check " + ok_ + " --no-cache --kernels generic --format model-card");
  EXPECT_EQ(ok_card.out.rfind("---\ntags:\n- fused-kernels-compatible\n", 0), 0u) << ok_card.out;
  // Two profiles of one checkpoint in the database: one card, the worst verdict's tag.
  ASSERT_EQ(db("add " + ok_ + " --kernels generic --name org/ok").exit_code, 0);
  ASSERT_EQ(db("add " + ok_ + " --kernels fused-int8kv").exit_code, 0);
  auto exp = db("export " + (t_ / "README.md") + " --model-card --model org/ok");
  ASSERT_EQ(exp.exit_code, 0) << exp.err;
  const std::string md = read_text(t_ / "README.md");
  EXPECT_EQ(md.rfind("---\ntags:\n", 0), 0u) << md;
  EXPECT_NE(md.find("  model: \"org/ok\"\n"), std::string::npos) << md;
  EXPECT_NE(md.find("    \"generic\":\n"), std::string::npos) << md;
  EXPECT_NE(md.find("    \"fused-int8kv\":\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| `fused-int8kv` |"), std::string::npos) << md;
  ASSERT_EQ(db("add " + bad_).exit_code, 0);
  EXPECT_EQ(db("export " + (t_ / "c.md") + " --model-card").exit_code, 64)
      << "two checkpoints and no --model";
}

// A measurement in the database decides at load time, and the message says where it came from:
// measured here ("probe") or imported ("database").
TEST_F(DbCli, LoadTimeDecisionReadsTheDatabaseAndNamesTheSource) {
  // Static INCOMPATIBLE under the generic screen, measured COMPATIBLE.
  auto probe = run_cli("probe " + bad_ + " --kernels generic --tokens 32 --db " + (t_ / "a.db"));
  ASSERT_EQ(probe.exit_code, 0) << probe.err;
  auto gen = [&](const std::string& file) {
    return run_cli("generate " + bad_ + " --token-ids 1,2,3 -n 2 --kernels generic --db " +
                   (t_ / file));
  };
  auto local = gen("a.db");
  ASSERT_EQ(local.exit_code, 0) << local.err;
  EXPECT_NE(local.err.find("probe measurement of "), std::string::npos) << local.err;
  EXPECT_NE(local.err.find("(COMPATIBLE), which outranks the static check (INCOMPATIBLE)"),
            std::string::npos)
      << local.err;
  EXPECT_NE(local.err.find("kernels: fused (generic;"), std::string::npos) << local.err;
  ASSERT_EQ(db("export " + (t_ / "shared.jsonl")).exit_code, 0);
  ASSERT_EQ(db("import " + (t_ / "shared.jsonl"), "b.db").exit_code, 0);
  auto imported = gen("b.db");
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_NE(
      imported.err.find("measurement in the database, imported from shared.jsonl (COMPATIBLE)"),
      std::string::npos)
      << imported.err;
  // No database: the static verdict decides.
  auto none = gen("none.db");
  EXPECT_NE(none.err.find("kernels: standard (fallback)"), std::string::npos) << none.err;
  // The API says the same.
  auto model = Model::load(bad_);
  ASSERT_TRUE(model.ok());
  KernelRequest req;
  req.use_custom_kernels = true, req.kernels = "generic";
  req.db_path = t_ / "b.db";
  auto d = decide_kernels(*model, req);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->source, "database");
  EXPECT_EQ(d->outcome, KernelOutcome::kFused);
  req.db_path = t_ / "a.db";
  EXPECT_EQ(decide_kernels(*model, req)->source, "probe");
  req.db_path = "";
  EXPECT_EQ(decide_kernels(*model, req)->source, "static");
}

// The load-time check works on the files the model already has open: it does not reopen the folder
// (which, renamed after loading, would make it fall back with "cannot check the model").
TEST(DbLoadTime, DecisionReusesTheModelsOpenCheckpoint) {
  TempDir t;
  const std::string dir = make_model(t, "m", "qwen3-0.6b");
  auto model = Model::load(dir);
  ASSERT_TRUE(model.ok()) << model.error().message;
  std::filesystem::rename(dir, t / "moved");
  KernelRequest req;
  req.use_custom_kernels = true, req.kernels = "fused", req.use_cache = false;
  auto d = decide_kernels(*model, req);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->outcome, KernelOutcome::kFused) << d->message;
  EXPECT_EQ(d->source, "static");
  EXPECT_EQ(d->static_verdict, Verdict::kCompatible);
}

}  // namespace
}  // namespace fusecheck
