// Per-layer kernel plans (src/plan, `fusecheck plan`, `--plan`). The oracle for every KL and top-1
// figure is the probe's own fp32 reference path: a plan's verdict is re-measured by running
// `fusecheck probe --plan`, never read back from the plan file.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "plan/plan.h"
#include "plan/plan_search.h"
#include "testing.h"

namespace fusecheck {
namespace {

using testing::run_cli;
using testing::TempDir;
using json = nlohmann::json;

std::string hf(const std::string& name) {
  return testing::data_dir() + "/hf/" + name;
}

json plan_for(const TempDir& t, const std::string& model, const std::string& kernels,
              const std::string& out, const std::string& extra = "--no-db") {
  auto r =
      run_cli("plan " + model + " --kernels " + kernels + " --out " + t / out + " -q " + extra);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(testing::read_text(t / out));
}

// The probe's JSON for a plan file or a profile; exit code in `code`.
json probe(const std::string& model, const std::string& what, int& code,
           const std::string& extra = "") {
  auto r = run_cli("probe " + model + " " + what + " --json --no-cache --greedy-tokens 0 " + extra);
  code = r.exit_code;
  return json::parse(r.out);
}

double added_kl(const json& p) {
  return p["fused_vs_fp32"]["kl_mean"].get<double>() -
         p["standard_vs_fp32"]["kl_mean"].get<double>();
}

int fused_groups(const json& plan) {
  int n = 0;
  for (const auto& l : plan["layers"]) n += static_cast<int>(l["fused"].size());
  return n;
}

// On the extreme-k_norm checkpoint (GQA, tied embeddings), in bf16 and in fp32: the full int8-KV
// profile is INCOMPATIBLE by the probe, the plan's probe verdict is within its budget.
TEST(Plan, ExtremeCheckpointPlanWithinBudgetWhereFullProfileIsIncompatible) {
  TempDir t;
  for (const char* dtype : {"bf16", "fp32"}) {
    SCOPED_TRACE(dtype);
    const std::string m = hf("qwen3-tiny-extreme/") + dtype;
    const json plan = plan_for(t, m, "fused-int8kv", std::string(dtype) + ".json");
    EXPECT_EQ(plan["schema"], "fusecheck.plan/1");
    EXPECT_EQ(plan["layers"].size(), 4u);
    int code = -1;
    const json full = probe(m, "--kernels fused-int8kv", code);
    EXPECT_EQ(code, 2);
    EXPECT_EQ(full["verdict"], "INCOMPATIBLE");
    EXPECT_GT(added_kl(full), 1e-3);
    const json measured = probe(m, "--plan " + t / (std::string(dtype) + ".json"), code);
    EXPECT_EQ(code, 0) << measured.dump();
    EXPECT_EQ(measured["verdict"], "COMPATIBLE");
    EXPECT_LE(added_kl(measured), 1e-3);
    const double loss = measured["standard_vs_fp32"]["top1_agreement"].get<double>() -
                        measured["fused_vs_fp32"]["top1_agreement"].get<double>();
    EXPECT_LE(loss, 0.01);
    // The plan records what the probe measures (same calibration, same reference).
    EXPECT_NEAR(plan["measured"]["added_kl"].get<double>(), added_kl(measured), 1e-9);
    EXPECT_TRUE(plan["within_budget"].get<bool>());
    EXPECT_FALSE(plan["sensitivity"].empty());
    EXPECT_GT(fused_groups(plan), 0);  // the plan keeps some fusion
  }
}

// The 28-layer extreme fixture, sharded: the same outcome.
TEST(Plan, ShardedExtremeFixture) {
  TempDir t;
  const std::string fx = t / "fx";
  auto f = run_cli("fixture " + fx + " --profile qwen3-0.6b-extreme --tiny --shard-size 200000");
  ASSERT_EQ(f.exit_code, 0) << f.err;
  const json plan = plan_for(t, fx, "fused-int8kv", "fx.json", "--no-db --tokens 16");
  EXPECT_EQ(plan["layers"].size(), 28u);
  int code = -1;
  const json full = probe(fx, "--kernels fused-int8kv", code, "--tokens 16");
  EXPECT_EQ(full["verdict"], "INCOMPATIBLE");
  const json measured = probe(fx, "--plan " + t / "fx.json", code, "--tokens 16");
  EXPECT_EQ(measured["verdict"], "COMPATIBLE") << measured["reason"];
  EXPECT_LE(added_kl(measured), 1e-3);
}

// An ordinary model keeps every group fused in every layer, and the profile's KV format.
TEST(Plan, OrdinaryModelKeepsEverythingFused) {
  TempDir t;
  const json plan = plan_for(t, hf("qwen3-tiny/bf16"), "fused", "p.json");
  for (const auto& l : plan["layers"]) {
    EXPECT_EQ(l["fused"].size(), 5u);
    EXPECT_EQ(l["kv"], "same");
  }
  EXPECT_DOUBLE_EQ(plan["kept"]["ops"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(plan["kept"]["launches"].get<double>(), 1.0);
  EXPECT_EQ(plan["kept"]["groups"], plan["kept"]["groups_total"]);
}

// Untied embeddings (Llama, GQA 8/4) and Qwen2 biases: a plan runs through generate, eval and
// bench.
TEST(Plan, RunsOnOtherArchitecturesThroughTheEngineCommands) {
  TempDir t;
  for (const char* name : {"llama-tiny/bf16", "qwen2-tiny/fp32"}) {
    SCOPED_TRACE(name);
    const std::string m = hf(name);
    (void)plan_for(t, m, "fused-int8kv", "p.json");
    auto g = run_cli("generate " + m + " --token-ids 1,2,3 -n 4 --plan " + t / "p.json");
    EXPECT_EQ(g.exit_code, 0) << g.err;
    EXPECT_NE(g.err.find("per-layer plan"), std::string::npos) << g.err;
    auto b = run_cli("bench " + m + " --plan " + t / "p.json" +
                     " --repeat 1 --prompt-tokens 8 --gen-tokens 4 --json");
    ASSERT_EQ(b.exit_code, 0) << b.err;
    const json j = json::parse(b.out);
    EXPECT_TRUE(j.contains("standard") && j.contains("fused"));
    EXPECT_TRUE(j.contains("plan_over_fused_decode"));
    int code = -1;
    EXPECT_EQ(probe(m, "--plan " + t / "p.json", code)["verdict"], "COMPATIBLE");
  }
}

TEST(Plan, PlanForAnotherModelIsRefused) {
  TempDir t;
  (void)plan_for(t, hf("qwen3-tiny-extreme/bf16"), "fused-int8kv", "p.json");
  for (const std::string cmd : {"generate", "probe", "eval"}) {
    std::string args = cmd + " " + hf("qwen3-tiny/bf16") + " --plan " + t / "p.json";
    if (cmd == "generate") args += " --token-ids 1,2 -n 1";
    if (cmd == "eval") args += " --token-ids 1,2 --out " + t / "o.safetensors";
    auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 3) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("the plan is for another checkpoint"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

TEST(Plan, MalformedPlansAreOneLineErrorsNamingTheFile) {
  TempDir t;
  const std::string m = hf("qwen3-tiny-extreme/bf16");
  const json good = plan_for(t, m, "fused-int8kv", "good.json");
  auto edited = [&](const std::function<void(json&)>& edit) {
    json j = good;
    edit(j);
    return j.dump();
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"notjson", "{ not json"},
      {"schema", edited([](json& j) { j["schema"] = "fusecheck.plan/9"; })},
      {"group", edited([](json& j) { j["layers"][0]["fused"] = {"warp_drive"}; })},
      {"kv", edited([](json& j) { j["layers"][1]["kv"] = "int3"; })},
      {"order", edited([](json& j) { j["layers"][1]["layer"] = 7; })},
      {"layers", edited([](json& j) { j["layers"].erase(3); })},
      {"nolayers", edited([](json& j) { j["layers"] = json::array(); })},
      {"fingerprint", edited([](json& j) { j["fingerprint"] = "XYZ"; })},
      {"budget", edited([](json& j) { j["budget"]["kl"] = "small"; })},
      {"profile", edited([](json& j) { j["profile"]["name"] = "no-such-profile"; })},
      {"notoffered", edited([](json& j) { j["layers"][0]["kv"] = "fp8_e4m3"; })},
  };
  for (const auto& [name, text] : cases) {
    SCOPED_TRACE(name);
    const std::string f = t / (name + ".json");
    testing::write_text(f, text);
    auto r = run_cli("generate " + m + " --token-ids 1,2 -n 1 --plan " + f);
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find(f), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

TEST(Plan, PlanWithKernelsIsAUsageError) {
  TempDir t;
  const std::string m = hf("qwen3-tiny/bf16"), p = t / "p.json";
  testing::write_text(p, "{}");
  for (const std::string& args :
       {"generate " + m + " --token-ids 1 --kernels fused --plan " + p,
        "eval " + m + " --token-ids 1 --kernels fused --plan " + p + " --out " + t / "o",
        "bench " + m + " --kernels fused --plan " + p,
        "probe " + m + " --kernels fused --plan " + p})
    EXPECT_EQ(run_cli(args).exit_code, 64) << args;
  auto r = run_cli("plan " + m + " --out " + t / "no/such/dir/p.json -q --no-db");
  EXPECT_EQ(r.exit_code, 74) << r.err;
}

// Each layer stores its own format; the cache's bytes per token are the sum of its layers', by
// the formats' element sizes (int8 1 byte, bf16 and fp16 2), keys and values.
TEST(Plan, MixedKvCacheBytesPerTokenIsTheSumOfItsLayers) {
  auto m = Model::load(hf("qwen3-tiny-extreme/bf16"));
  ASSERT_TRUE(m.ok()) << m.error().message;
  const auto& c = m->config();
  ASSERT_EQ(c.num_layers, 4);
  KernelPlan plan = m->standard_plan();
  const std::vector<std::pair<KvLayerFormat, int>> layers = {
      {{KvFormat::kInt8, KvScale::kPerTensor}, 1},
      {{KvFormat::kSame, KvScale::kPerTensor}, 2},
      {{KvFormat::kInt8, KvScale::kPerChannel}, 1},
      {{KvFormat::kFp16, KvScale::kPerTensor}, 2}};
  int64_t expect = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    plan.layers[l].kv = layers[l].first;
    expect += 2 * c.num_kv_heads * c.head_dim * layers[l].second;
  }
  KvCache cache = m->new_cache(Precision::kModel, 16, &plan);
  EXPECT_EQ(cache.bytes_per_position(), expect);
  // The mixed cache runs: its int8 layers hold what the int8 quantiser gives, its bf16 layer the
  // standard path's keys exactly.
  std::vector<float> logits;
  const std::vector<int32_t> ids = {1, 2, 3, 4, 5};
  ASSERT_TRUE(
      m->forward(ids, Precision::kModel, cache, LogitsFor::kAll, logits, nullptr, &plan).ok());
  KvCache std_cache = m->new_cache(Precision::kModel, 16);
  std::vector<float> std_logits;
  ASSERT_TRUE(m->forward(ids, Precision::kModel, std_cache, LogitsFor::kAll, std_logits).ok());
  const int64_t hd = c.head_dim, n = 5;
  std::vector<float> k(n * hd), v(n * hd), sk(n * hd), sv(n * hd);
  // Layer 0 is int8 with the standard path upstream of it: every key within half a step of the
  // standard one; layer 1's keys then differ only through layer 0's rounding.
  cache.load_head(0, 0, n, k.data(), v.data());
  std_cache.load_head(0, 0, n, sk.data(), sv.data());
  float amax = 0;
  for (float x : sk) amax = std::max(amax, std::abs(x));
  for (size_t i = 0; i < k.size(); ++i)
    EXPECT_LE(std::abs(k[i] - sk[i]), amax / 127 * 0.51f + 1e-6f);
  // Mismatched cache and plan are refused.
  KvCache wrong = m->new_cache(Precision::kModel, 16);
  EXPECT_FALSE(
      m->forward(ids, Precision::kModel, wrong, LogitsFor::kAll, logits, nullptr, &plan).ok());
}

// When the full profile is INCOMPATIBLE by a stored probe measurement, the load-time decision
// runs the stored plan and says so; without one it falls back.
TEST(Plan, LoadDecisionUsesAStoredPlan) {
  TempDir t;
  const std::string m = hf("qwen3-tiny-extreme/bf16"), db = t / "db.sqlite";
  auto p = run_cli("probe " + m + " --kernels fused-int8kv --greedy-tokens 0 --db " + db);
  ASSERT_EQ(p.exit_code, 2) << p.err;
  const std::string gen =
      "generate " + m + " --token-ids 1,2,3 -n 2 --kernels fused-int8kv --db " + db;
  auto before = run_cli(gen);
  EXPECT_EQ(before.exit_code, 0) << before.err;
  EXPECT_NE(before.err.find("standard (fallback)"), std::string::npos) << before.err;
  auto pl =
      run_cli("plan " + m + " --kernels fused-int8kv -q --out " + t / "p.json" + " --db " + db);
  ASSERT_EQ(pl.exit_code, 0) << pl.err;
  auto after = run_cli(gen);
  EXPECT_EQ(after.exit_code, 0) << after.err;
  EXPECT_NE(after.err.find("using the stored per-layer plan"), std::string::npos) << after.err;
  EXPECT_NE(after.err.find("kernels: fused (per-layer plan)"), std::string::npos) << after.err;
  // The same tokens as running the plan file directly.
  auto direct = run_cli("generate " + m + " --token-ids 1,2,3 -n 2 --plan " + t / "p.json");
  EXPECT_EQ(direct.out, after.out);
}

TEST(Plan, JsonRoundTripAndKvNames) {
  for (const char* s : {"same", "fp16", "int8", "int8:per_channel", "fp8_e4m3"}) {
    auto f = parse_kv_layer_format(s);
    ASSERT_TRUE(f.ok()) << s;
    EXPECT_EQ(kv_layer_format_name(*f), s);
  }
  EXPECT_FALSE(parse_kv_layer_format("same:per_channel").ok());
  EXPECT_FALSE(parse_kv_layer_format("int8:per_row").ok());
  PlanFile p;
  p.fingerprint = "0123abcd", p.profile = "fused-int8kv", p.profile_hash = "ff";
  p.plan = KernelPlan::standard(2);
  p.plan.layers[1].fused[1] = true;
  p.plan.layers[1].kv = {KvFormat::kInt8, KvScale::kPerChannel};
  p.measured.added_kl = 1e-4, p.measured.positions = 10;
  auto back = plan_from_json(plan_to_json(p), "x.json");
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->plan.kv_formats(), p.plan.kv_formats());
  EXPECT_TRUE(back->plan.layers[1].fused[1]);
  EXPECT_FALSE(back->plan.layers[0].fused[1]);
  EXPECT_DOUBLE_EQ(back->measured.added_kl, 1e-4);
}

}  // namespace
}  // namespace fusecheck
