// Stored per-layer plans travel with the compatibility database: `db export` writes them as
// fusecheck.db-plan/1 lines, `db import` and `db merge` bring them into another database, where
// the load-time decision offers them again, and `db rebuild` keeps the plan rows whose checksum
// still matches. The oracle for "offered again" is the engine itself: the same tokens as running
// the plan file with --plan.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "testing.h"

namespace fusecheck {
namespace {

using testing::run_cli;
using testing::TempDir;
using json = nlohmann::json;
namespace fs = std::filesystem;

const std::string kExtreme = testing::data_dir() + "/hf/qwen3-tiny-extreme/bf16";
const std::string kGen = "generate " + kExtreme + " --token-ids 1,2,3 -n 2 --kernels fused-int8kv";

bool offers_plan(const std::string& db) {
  auto g = run_cli(kGen + " --db " + db);
  EXPECT_EQ(g.exit_code, 0) << g.err;
  return g.err.find("using the stored per-layer plan") != std::string::npos;
}

TEST(PlanDb, ExportImportMergeAndRebuildCarryPlans) {
  TempDir t;
  const std::string a = t / "a.db", b = t / "b.db", x = t / "x.jsonl";
  ASSERT_EQ(run_cli("probe " + kExtreme + " --kernels fused-int8kv --greedy-tokens 0 --db " + a)
                .exit_code,
            2);  // the full profile: INCOMPATIBLE
  auto pl = run_cli("plan " + kExtreme + " --kernels fused-int8kv -q --out " + t / "p.json" +
                    " --db " + a);
  ASSERT_EQ(pl.exit_code, 0) << pl.err;
  ASSERT_TRUE(offers_plan(a));
  auto ex = run_cli("db export " + x + " --db " + a);
  ASSERT_EQ(ex.exit_code, 0) << ex.err;
  EXPECT_NE(ex.err.find("and 1 plans"), std::string::npos) << ex.err;
  std::string plan_line;
  for (std::string line; const char c : testing::read_text(x) + "\n")
    if (c != '\n') {
      line += c;
    } else {
      if (line.find("\"fusecheck.db-plan/1\"") != std::string::npos) plan_line = line;
      line.clear();
    }
  ASSERT_FALSE(plan_line.empty());

  // Into a fresh database: the plan is offered again, and it is the same plan (same tokens).
  auto im = run_cli("db import " + x + " --db " + b);
  ASSERT_EQ(im.exit_code, 0) << im.err;
  EXPECT_NE(im.out.find("plans: 1 added"), std::string::npos) << im.out;
  auto via_db = run_cli(kGen + " --db " + b);
  EXPECT_NE(via_db.err.find("using the stored per-layer plan"), std::string::npos) << via_db.err;
  auto direct = run_cli("generate " + kExtreme + " --token-ids 1,2,3 -n 2 --plan " + t / "p.json");
  ASSERT_EQ(direct.exit_code, 0) << direct.err;
  EXPECT_EQ(via_db.out, direct.out);
  // Imported again: kept, not duplicated.
  EXPECT_NE(run_cli("db import " + x + " --db " + b).out.find("plans: 0 added, 0 replaced, 1 kept"),
            std::string::npos);
  // db merge carries it as well.
  ASSERT_EQ(run_cli("db merge " + a + " --db " + t / "m.db").exit_code, 0);
  EXPECT_TRUE(offers_plan(t / "m.db"));

  // A plan line whose text no longer matches its checksum is rejected; the records still import.
  json j = json::parse(plan_line);
  std::string text = j["plan"];
  const size_t at = text.find("\"layers\"");
  ASSERT_NE(at, std::string::npos);
  text.insert(at, "\"note\":1,");
  j["plan"] = text;
  std::string bad = testing::read_text(x);
  bad.replace(bad.find(plan_line), plan_line.size(), j.dump());
  testing::write_text(t / "bad.jsonl", bad);
  auto bi = run_cli("db import " + t / "bad.jsonl" + " --db " + t / "c.db");
  EXPECT_EQ(bi.exit_code, 3) << bi.err;
  EXPECT_NE(bi.err.find("plan: the plan does not match its checksum"), std::string::npos) << bi.err;
  EXPECT_FALSE(offers_plan(t / "c.db"));

  // A plan row damaged on disk: refused by its checksum (a note, then the fallback), export
  // fails with one line, and rebuild keeps the records but not that plan.
  std::string bytes = testing::read_text(b);
  ASSERT_FALSE(fs::exists(b + "-wal") && fs::file_size(b + "-wal") > 0);
  const size_t pos = bytes.find("fusecheck.plan/1");
  ASSERT_NE(pos, std::string::npos);
  bytes[pos + 15] = '2';  // "fusecheck.plan/2"
  testing::write_text(b, bytes);
  auto g = run_cli(kGen + " --db " + b);
  EXPECT_EQ(g.exit_code, 0) << g.err;
  EXPECT_NE(g.err.find("stored plan not used"), std::string::npos) << g.err;
  EXPECT_NE(g.err.find("checksum mismatch"), std::string::npos) << g.err;
  EXPECT_NE(g.err.find("standard (fallback)"), std::string::npos) << g.err;
  auto ex2 = run_cli("db export " + t / "y.jsonl" + " --db " + b);
  EXPECT_EQ(ex2.exit_code, 3);
  EXPECT_NE(ex2.err.find("a stored plan is damaged"), std::string::npos) << ex2.err;
  auto rb = run_cli("db rebuild --db " + b);
  ASSERT_EQ(rb.exit_code, 0) << rb.err;
  EXPECT_NE(rb.out.find("0 plans kept"), std::string::npos) << rb.out;
  EXPECT_FALSE(offers_plan(b));
  // A rebuild of an intact file keeps its plan.
  auto ra = run_cli("db rebuild --db " + a);
  ASSERT_EQ(ra.exit_code, 0) << ra.err;
  EXPECT_NE(ra.out.find("1 plans kept"), std::string::npos) << ra.out;
  EXPECT_TRUE(offers_plan(a));
}

}  // namespace
}  // namespace fusecheck
