// Command-line contracts for broken input: error messages stay one line even when names in the
// files carry control characters, usage errors exit 64; and the examples/ scripts on fixtures.
#include <fmt/format.h>

#include "fixture/fixture.h"
#include "malformed_testing.h"

namespace fusecheck {
namespace {

using namespace malformed;  // NOLINT(google-build-using-namespace): the suite's shared helpers

// ---------------------------------------------------------------------------------------------
// Error messages are one line, even when names inside the files carry control characters.

TEST(MalformedCli, NewlineInIndexKeyStaysOneLine) {
  ShardedModel m;
  m.index["weight_map"]["evil\nname"] = "../x.safetensors";
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.index_path(), "is not a plain file name"));
  ExpectCliInputError(m.dir, "not a plain file name");
}

TEST(MalformedCli, NewlineInShardFileNameStaysOneLine) {
  ShardedModel m;
  m.index["weight_map"][k_norm(1)] = "evil\nshard.safetensors";
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.dir, ""));
}

TEST(MalformedCli, NewlineInRepeatedTensorNameStaysOneLine) {
  ShardedModel m;  // "x\ny" is JSON-escaped in both headers: the parsed name holds a newline
  m.shard1.add_f32("model.x\\ny", {1});
  m.shard2.add_f32("model.x\\ny", {1});
  m.write();
  EXPECT_TRUE(
      IsError(check(m.dir), m.dir + "/" + ShardedModel::kShard2, "shards must not repeat tensors"));
}

TEST(MalformedCli, NewlineInModelTypeStaysOneLine) {
  TinyModel m;
  m.config["model_type"] = "qwen\nthree";
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/config.json", "unknown architecture"));
}

// ---------------------------------------------------------------------------------------------
// Command-line usage: exit 64 for usage errors, 0 for --help and --version.

TEST(MalformedCli, CheckWithoutModelDir) {
  RunResult r = run_cli("check");
  EXPECT_EQ(r.exit_code, 64);
  EXPECT_NE(r.err.find("MODEL_DIR"), std::string::npos) << r.err;
}

TEST(MalformedCli, UnknownFlag) {
  TinyModel m;
  m.write();
  RunResult r = run_cli("check " + shq(m.dir) + " --no-cache --frobnicate");
  EXPECT_EQ(r.exit_code, 64);
  EXPECT_NE(r.err.find("--frobnicate"), std::string::npos) << r.err;
}

// --persistent-decode is a CUDA backend's schedule: asked on the CPU it is a usage error, not
// silently ignored.
TEST(MalformedCli, PersistentDecodeWithoutCudaIsAUsageError) {
  const std::string hf = testing::data_dir() + "/hf/qwen3-tiny/bf16";
  RunResult r = run_cli("generate " + shq(hf) + " --token-ids 1,2 -n 1 --persistent-decode");
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_NE(r.err.find("--persistent-decode applies to --device cuda"), std::string::npos) << r.err;
}

TEST(MalformedCli, BogusFormat) {
  TinyModel m;
  m.write();
  RunResult r = run_cli("check " + shq(m.dir) + " --no-cache --format bogus");
  EXPECT_EQ(r.exit_code, 64);
  EXPECT_TRUE(r.err.starts_with("fusecheck: error: ")) << r.err;
  EXPECT_NE(r.err.find("bogus"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(MalformedCli, BogusColor) {
  TinyModel m;
  m.write();
  RunResult r = run_cli("check " + shq(m.dir) + " --no-cache --color sometimes");
  EXPECT_EQ(r.exit_code, 64);
  EXPECT_NE(r.err.find("sometimes"), std::string::npos) << r.err;
}

TEST(MalformedCli, HelpAndVersion) {
  RunResult h = run_cli("--help");
  EXPECT_EQ(h.exit_code, 0) << h.err;
  EXPECT_NE(h.out.find("check"), std::string::npos) << h.out;
  RunResult ch = run_cli("check --help");
  EXPECT_EQ(ch.exit_code, 0) << ch.err;
  EXPECT_NE(ch.out.find("MODEL_DIR"), std::string::npos) << ch.out;
  RunResult v = run_cli("--version");
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_NE(v.out.find(std::string("fusecheck ") + FUSECHECK_VERSION), std::string::npos) << v.out;
}

// ---------------------------------------------------------------------------------------------
// examples/: check_all.sh and engine_load_example against fixtures.

// From CMake, not __FILE__: a ccache build with CCACHE_BASEDIR compiles with relative paths.
std::string repo_root() {
  return FUSECHECK_SOURCE_DIR;
}
std::string build_dir() {
  return fs::path(FUSECHECK_BINARY).parent_path().string();
}

// Two tiny fixture models under one root: ordinary (COMPATIBLE) and extreme (INCOMPATIBLE).
struct TwoFixtures {
  TwoFixtures() {
    for (const char* p : {"qwen3-0.6b", "qwen3-0.6b-extreme"}) {
      FixtureOptions o;
      o.profile = p;
      o.tiny = true;
      auto s = write_fixture(root / p, o);
      if (!s.ok()) throw std::runtime_error(s.error().message);
    }
  }
  TempDir root;
};

// One row of check_all.sh's table.
std::string row(std::string_view verdict, const std::string& dir) {
  return fmt::format("{:<13} {}\n", verdict, dir);
}

TEST(ExamplesTest, CheckAllSummarisesAndExitsWithTheWorstCode) {
  const std::string script = repo_root() + "/examples/check_all.sh";
  ASSERT_TRUE(fs::exists(script)) << script;
  TwoFixtures fx;
  const std::string cmd = "FUSECHECK=" + shq(FUSECHECK_BINARY) + " bash " + shq(script) + " " +
                          shq(fx.root.path()) + " --no-cache";
  RunResult r = run_command(cmd);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.out.find(row("COMPATIBLE", fx.root / "qwen3-0.6b")), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(row("INCOMPATIBLE", fx.root / "qwen3-0.6b-extreme")), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("summary: 2 models: 1 COMPATIBLE, 0 WARNING, 1 INCOMPATIBLE, 0 ERROR\n"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.err, "");

  // Extra arguments reach fusecheck: a forced verdict changes every row and the exit code.
  RunResult w = run_command(cmd + " --force-status WARNING");
  EXPECT_EQ(w.exit_code, 1) << w.out << w.err;
  EXPECT_NE(w.out.find("summary: 2 models: 0 COMPATIBLE, 2 WARNING, 0 INCOMPATIBLE, 0 ERROR\n"),
            std::string::npos)
      << w.out;

  // A broken model is an ERROR row, its error goes to stderr, and the worst code becomes 3.
  fs::copy(fx.root / "qwen3-0.6b", fx.root / "broken");
  write_text(fx.root / "broken/config.json", "{");
  RunResult r3 = run_command(cmd);
  EXPECT_EQ(r3.exit_code, 3) << r3.out << r3.err;
  EXPECT_NE(r3.out.find(row("ERROR", fx.root / "broken")), std::string::npos) << r3.out;
  EXPECT_NE(r3.out.find("summary: 3 models: 1 COMPATIBLE, 0 WARNING, 1 INCOMPATIBLE, 1 ERROR\n"),
            std::string::npos)
      << r3.out;
  EXPECT_NE(r3.err.find("not valid JSON"), std::string::npos) << r3.err;

  EXPECT_EQ(run_command("bash " + shq(script)).exit_code, 64);
  EXPECT_EQ(run_command("bash " + shq(script) + " " + shq(fx.root / "nope")).exit_code, 64);
  TempDir empty;
  RunResult none = run_command("FUSECHECK=" + shq(FUSECHECK_BINARY) + " bash " + shq(script) + " " +
                               shq(empty.path()));
  EXPECT_EQ(none.exit_code, 3) << none.out << none.err;
  EXPECT_NE(none.err.find("no model directories"), std::string::npos) << none.err;
}

TEST(ExamplesTest, EngineLoadChoosesKernels) {
  const std::string exe = build_dir() + "/examples/engine_load_example";
  if (!fs::exists(exe))
    GTEST_SKIP() << exe << " not built (cmake --build build --target engine_load_example)";
  TwoFixtures fx;
  // The example uses the result cache as an engine would; keep it inside the test's directory.
  const std::string engine =
      "XDG_CACHE_HOME=" + shq(fx.root / "cache") + " FUSECHECK_FORCE_STATUS= " + shq(exe);
  RunResult ok = run_command(engine + " " + shq(fx.root / "qwen3-0.6b"));
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, "kernels: fused\n");
  EXPECT_EQ(ok.err, "");

  const std::string extreme = fx.root / "qwen3-0.6b-extreme";
  RunResult bad = run_command(engine + " " + shq(extreme));
  EXPECT_EQ(bad.exit_code, 0) << bad.err;
  EXPECT_EQ(bad.out, "kernels: standard\n");
  EXPECT_NE(bad.err.find(fallback_warning(extreme)), std::string::npos) << bad.err;

  RunResult forced = run_command(engine + " " + shq(extreme) + " --force-fused");
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_EQ(forced.out, "kernels: fused\n");
  EXPECT_NE(forced.err.find("INCOMPATIBLE"), std::string::npos) << forced.err;

  // The reference kernel profile moves no rounding point: fused is fine even for extreme gains.
  RunResult std_kernels = run_command(engine + " --kernels standard " + shq(extreme));
  EXPECT_EQ(std_kernels.exit_code, 0) << std_kernels.err;
  EXPECT_EQ(std_kernels.out, "kernels: fused\n");

  RunResult missing = run_command(engine + " " + shq(fx.root / "nope"));
  EXPECT_EQ(missing.exit_code, 0) << missing.err;
  EXPECT_EQ(missing.out, "kernels: standard\n");
  EXPECT_NE(missing.err.find("no such model directory"), std::string::npos) << missing.err;

  for (const char* bad_args : {"", "--bogus", "a b", "--kernels"}) {
    RunResult usage = run_command(engine + " " + bad_args);
    EXPECT_EQ(usage.exit_code, 64) << bad_args;
    EXPECT_EQ(usage.out, "") << bad_args;
  }
}

}  // namespace
}  // namespace fusecheck
