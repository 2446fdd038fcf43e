// The CLI's contract (issue 12, items 4-14): every error is one line starting "fusecheck: error:"
// with a documented exit (3 input, 64 usage, 74 output), output that cannot be written is an error,
// generation stops at the context limit instead of failing, contradictory flags are usage errors,
// chat handles its own commands and fails a piped script on a failed turn, and `check --probe`
// reports the verdict it exits with. Models are fixtures written by `fusecheck fixture`.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "check/cache.h"
#include "check/check.h"
#include "db/store.h"
#include "engine/kernel_select.h"
#include "model/model.h"
#include "probe/probe_report.h"
#include "testing.h"
#include "tokenizer_testing.h"

namespace fusecheck {
namespace {

using testing::run_cli;
using testing::RunResult;

// A tiny Qwen3 fixture (28 layers, hidden 64, vocab 512, context 512), written once per test.
struct Fixture {
  Fixture() {
    RunResult f = run_cli("fixture " + dir + " --profile qwen3-0.6b --tiny");
    if (f.exit_code != 0) throw std::runtime_error(f.err);
  }
  testing::TempDir root;
  std::string dir = root / "m";
};

// Qwen3-shaped with the real Qwen3 tokenizer (the npm oracle's copy) and a vocabulary of `vocab`.
std::string chat_model(const testing::TempDir& tmp, int vocab) {
  testing::write_text(tmp / "profiles.json",
                      fmt::format(R"({{"profiles": [{{"name": "c", "config": {{
      "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "head_dim": 16,
      "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
      "num_key_value_heads": 1, "num_hidden_layers": 2, "max_position_embeddings": 4096,
      "rms_norm_eps": 1e-6, "rope_theta": 1000000, "tie_word_embeddings": true,
      "vocab_size": {}}},
      "gains": {{"input_layernorm": {{"median": 1.0, "sigma": 0.25}},
                "post_attention_layernorm": {{"median": 1.0, "sigma": 0.25}},
                "q_norm": {{"median": 1.0, "sigma": 0.25}}, "k_norm": {{"median": 1.0, "sigma": 0.25}},
                "final_norm": {{"median": 1.0, "sigma": 0.25}}}}}}]}})",
                                  vocab));
  const std::string m = tmp / "chat";
  RunResult f = run_cli("fixture " + m + " --profiles " + (tmp / "profiles.json") + " --profile c");
  EXPECT_EQ(f.exit_code, 0) << f.err;
  for (const char* file : {"tokenizer.json", "tokenizer_config.json"})
    testing::write_text(m + "/" + file,
                        testing::read_text(testing::qwen3_model_dir() + "/" + file));
  return m;
}

// One line on stderr, the convention's prefix, the expected exit and words.
void ExpectError(const RunResult& r, int code, std::string_view words) {
  EXPECT_EQ(r.exit_code, code) << r.err;
  EXPECT_EQ(r.err.rfind("fusecheck: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(words), std::string::npos) << r.err;
  EXPECT_LT(r.err.size(), 300u) << r.err;  // no 309-digit range bounds
}

// Runs `args` with stdout on /dev/full (every write fails with ENOSPC). run_cli appends its own
// redirections; the trailing "#" comments them out, so stderr goes to a file of ours.
RunResult run_to_full(const std::string& args, const std::string& stdin_from = "") {
  testing::TempDir io;
  RunResult r = run_cli(args + " 2>" + (io / "err") + " >/dev/full #", stdin_from);
  r.err = testing::read_text(io / "err");
  return r;
}

TEST(CliConventions, BadValuesAndUnknownCommandsAreUsageErrors) {
  Fixture fx;
  const std::string m = fx.dir;
  ExpectError(run_cli("nope"), 64, "unknown command \"nope\"");
  ExpectError(run_cli("generate " + m + " --token-ids 1 -n -1"), 64, "non-negative integer");
  ExpectError(run_cli("generate " + m + " --token-ids 1 -n abc"), 64, "non-negative integer");
  ExpectError(run_cli("chat " + m + " -n 0"), 64, "positive integer");
  ExpectError(run_cli("generate " + m + " --token-ids 1 --max-context 0"), 64,
              "an integer of at least 1");
  ExpectError(run_cli("generate " + m + " --token-ids 1 --threads abc"), 64, "from 1 to 1024");
  ExpectError(run_cli("generate " + m + " --token-ids 1 --temperature nan"), 64, "number");
  for (const char* v : {"nan", "inf", "-inf"})
    ExpectError(run_cli("check " + m + " --no-cache --max-weight-ratio " + std::string(v)), 64,
                "must be a number");
  // --token-ids abc is a usage error like -n abc, for generate and eval alike.
  ExpectError(run_cli("generate " + m + " --token-ids abc"), 64, "\"abc\" is not a token id");
  ExpectError(run_cli("eval " + m + " --token-ids 1,x --out " + (fx.root / "o.safetensors")), 64,
              "\"x\" is not a token id");
  // Input errors: exit 3, the same prefix.
  ExpectError(run_cli("generate " + (fx.root / "missing") + " --token-ids 1"), 3, "missing");
  ExpectError(run_cli("generate " + m + " --token-ids 1,600"), 3, "outside the model's vocabulary");
  ExpectError(run_cli("probe " + (fx.root / "missing")), 3, "missing");
  ExpectError(run_cli("eval " + (fx.root / "missing") + " --token-ids 1 --out x.safetensors"), 3,
              "missing");
}

TEST(CliConventions, ContradictoryOrPointlessFlagsAreUsageErrors) {
  Fixture fx;
  const std::string m = fx.dir;
  ExpectError(run_cli("generate " + m + " --token-ids 1 --no-thinking"), 64, "--chat");
  // --no-fusion, the kill switch, wins over fusion flags, with a note instead of silently.
  RunResult nf = run_cli("generate " + m + " --token-ids 1 -n 1 --kernels fused --no-fusion");
  EXPECT_EQ(nf.exit_code, 0) << nf.err;
  EXPECT_NE(nf.err.find("fusecheck: note: --no-fusion wins over --kernels"), std::string::npos)
      << nf.err;
  ExpectError(run_cli("generate " + m + " --token-ids 1 --strict"), 64, "--strict");
  ExpectError(run_cli("check " + m + " --no-cache --report-format json"), 64, "--report");
  ExpectError(run_cli("check " + m + " --no-cache --report ''"), 64, "--report");
  ExpectError(run_cli("probe " + m + " --report-format json"), 64, "--report");
  // --kernels standard runs and says so (it used to log "kernels: fused (standard ...)").
  RunResult r = run_cli("generate " + m + " --token-ids 1 -n 1 --kernels standard");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("kernels: standard (standard;"), std::string::npos) << r.err;
}

TEST(CliConventions, UnwritableOutputIsAnError) {
  Fixture fx;
  const std::string m = fx.dir;
  for (std::string cmd :
       {"check " + m + " --no-cache", "check " + m + " --no-cache --format json",
        "generate " + m + " --token-ids 1,2 -n 3", "generate " + m + " --token-ids 1,2 -n 3 --json",
        "fixture " + (fx.root / "f2") + " --profile qwen3-0.6b --tiny"}) {
    SCOPED_TRACE(cmd);
    RunResult r = run_to_full(cmd);
    EXPECT_EQ(r.exit_code, 74) << r.err;
    EXPECT_NE(r.err.find("fusecheck: error: cannot write to standard output"), std::string::npos)
        << r.err;
  }
  // A --report or --out file that cannot be written: exit 74 too.
  ExpectError(run_cli("check " + m + " --no-cache --report /proc/nope/r.json"), 74, "r.json");
  ExpectError(run_cli("eval " + m + " --token-ids 1 --out /proc/nope/o.safetensors"), 74,
              "o.safetensors");
}

TEST(CliConventions, TokenizeAndChatWriteErrors) {
  FC_REQUIRE_ORACLE();
  testing::TempDir tmp;
  const std::string m = chat_model(tmp, 151936);
  RunResult t = run_to_full("tokenize " + m + " --text hello");
  EXPECT_EQ(t.exit_code, 74) << t.err;
  RunResult c = run_to_full("chat " + m + " -n 2 --quiet", "echo hi | ");
  EXPECT_EQ(c.exit_code, 74) << c.err;
  EXPECT_NE(c.err.find("fusecheck: error: "), std::string::npos) << c.err;
}

TEST(CliGenerate, StopsAtTheContextLimitWithANote) {
  Fixture fx;
  for (const char* n : {"256", "100000"}) {
    RunResult r = run_cli("generate " + fx.dir +
                          " --token-ids 1,2 --max-context 8 --temperature 0 --json -n " + n);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    // 2 prompt tokens fill 2 positions; each generated token but the last is run: 8 - 2 + 1.
    EXPECT_EQ(j["token_ids"].size(), 7u);
    EXPECT_TRUE(j["context_full"].get<bool>());
    EXPECT_NE(r.err.find("fusecheck: note: stopped after 7 tokens: the context is full"),
              std::string::npos)
        << r.err;
  }
  // A prompt that does not fit is refused before anything is printed.
  RunResult r = run_cli("generate " + fx.dir + " --token-ids 1,2,3,4,5,6,7,8,9 --max-context 8");
  ExpectError(r, 3, "exceeds --max-context 8");
  EXPECT_EQ(r.out, "");
}

TEST(CliGenerate, TokenIdsDoNotNeedAWorkingTokenizer) {
  Fixture fx;
  testing::write_text(fx.dir + "/tokenizer.json", "{\"truncated\": ");
  RunResult r = run_cli("generate " + fx.dir + " --token-ids 1,2 -n 2 --temperature 0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("1 2 ", 0), 0u) << r.out;  // ids, as without a tokenizer
  EXPECT_NE(r.err.find("fusecheck: note: printing token ids: "), std::string::npos) << r.err;
  // --prompt needs it: one line naming the file, without the JSON library's bracketed id.
  RunResult p = run_cli("generate " + fx.dir + " --prompt hi");
  ExpectError(p, 3, "tokenizer.json: not valid JSON");
  EXPECT_EQ(p.err.find("[json.exception"), std::string::npos) << p.err;
}

TEST(CliChat, HandlesItsCommandsAndFailsAPipedScriptOnAFailedTurn) {
  FC_REQUIRE_ORACLE();
  testing::TempDir tmp;
  const std::string m = chat_model(tmp, 151936);
  // /help is answered here: no turn runs (no speed line), the list goes to stdout.
  RunResult h = run_cli("chat " + m + " -n 2", "printf '/help\\n/exit\\n' | ");
  ASSERT_EQ(h.exit_code, 0) << h.err;
  EXPECT_NE(h.out.find("commands: /help"), std::string::npos) << h.out;
  EXPECT_EQ(h.err.find("tok/s"), std::string::npos) << h.err;
  // A turn that overflows the context: exit 3, no /reset hint (meaningless in a pipe), and the
  // turns after it do not run.
  RunResult o = run_cli("chat " + m + " -n 2 --max-context 12",
                        "printf 'a long first turn that does not fit\\nsecond\\n' | ");
  ExpectError(o, 3, "exceeds --max-context 12");
  EXPECT_EQ(o.err.find("/reset"), std::string::npos) << o.err;
}

// Interactive chat on a real terminal (tmux): line editing, history, /help answered locally, Ctrl-C
// stops the reply but not the chat, Ctrl-D ends it on a new line with exit 0. Skips without tmux.
class Tmux {
 public:
  explicit Tmux(const std::string& cmd) {
    name_ = "fc-test-" + std::to_string(::getpid());
    ok_ = std::system(("tmux new-session -d -s " + name_ + " -x 200 -y 50 '" + cmd +
                       "; echo EXIT=$?; sleep 60' 2>/dev/null")
                          .c_str()) == 0;
  }
  ~Tmux() { std::system(("tmux kill-session -t " + name_ + " 2>/dev/null").c_str()); }
  bool ok() const { return ok_; }
  void keys(const std::string& k) { std::system(("tmux send-keys -t " + name_ + " " + k).c_str()); }
  std::string screen() const {
    testing::TempDir io;
    std::system(("tmux capture-pane -p -S -200 -t " + name_ + " >" + (io / "s")).c_str());
    return testing::read_text(io / "s");
  }
  // Polls the screen until `text` appears `times` times (the terminal is asynchronous).
  bool wait_for(const std::string& text, int times = 1) const {
    for (int i = 0; i < 200; ++i) {
      std::string s = screen();
      int n = 0;
      for (size_t p = 0; (p = s.find(text, p)) != std::string::npos; ++p) ++n;
      if (n >= times) return true;
      ::usleep(100 * 1000);
    }
    return false;
  }

 private:
  std::string name_;
  bool ok_ = false;
};

TEST(CliChat, InteractiveLineEditingHistoryAndInterrupts) {
  FC_REQUIRE_ORACLE();
  if (std::system("command -v tmux >/dev/null 2>&1") != 0) GTEST_SKIP() << "tmux not installed";
  testing::TempDir tmp;
  const std::string m = chat_model(tmp, 151936);
  Tmux t(std::string(FUSECHECK_BINARY) + " chat " + m + " -n 100000 --temperature 1 --quiet");
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t.wait_for(">")) << t.screen();  // the prompt (capture-pane drops its space)
  t.keys("/hlp Left Left e Enter");            // arrows move the cursor: the line becomes "/help"
  ASSERT_TRUE(t.wait_for("commands: /help")) << t.screen();
  t.keys("hi Enter");  // a long reply (100000 tokens): Ctrl-C stops it
  ::usleep(1500 * 1000);
  t.keys("C-c");
  ASSERT_TRUE(t.wait_for("(reply stopped)")) << t.screen();
  ::usleep(500 * 1000);
  t.keys("Up Up Enter");  // history: "/help" again; its answer shows the chat went on
  ASSERT_TRUE(t.wait_for("commands: /help", 2)) << t.screen();
  t.keys("C-d");
  ASSERT_TRUE(t.wait_for("EXIT=0")) << t.screen();
  EXPECT_EQ(t.screen().find("^[["), std::string::npos) << t.screen();
}

TEST(CliChat, RefusesATokenizerLargerThanTheVocabulary) {
  FC_REQUIRE_ORACLE();
  testing::TempDir tmp;
  const std::string m = chat_model(tmp, 512);  // the Qwen3 tokenizer has 151669 tokens
  ExpectError(run_cli("chat " + m, "echo hi | "), 3, "vocab_size is 512");
  ExpectError(run_cli("generate " + m + " --prompt hi"), 3, "vocab_size is 512");
}

// check --probe exits with the verdict it reports, in every format; a forced verdict wins and is
// labelled as forced; a model the engine cannot run keeps its static report.
TEST(CliCheckProbe, ReportsTheVerdictItExitsWith) {
  Fixture fx;
  const std::string base = "check " + fx.dir + " --no-cache --probe --kernels fused-int8kv";
  RunResult j = run_cli(base + " --format json");
  ASSERT_LT(j.exit_code, 3) << j.err;
  auto report = nlohmann::json::parse(j.out);
  EXPECT_EQ(report["verdict"], report["probe"]["verdict"]);
  EXPECT_EQ(report["verdict_source"], "probe");
  EXPECT_TRUE(report.contains("static_verdict"));
  auto v = parse_verdict(report["verdict"].get<std::string>());
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(j.exit_code, int(*v));
  const std::string name = report["verdict"].get<std::string>();

  RunResult card = run_cli(base + " --format model-card");
  EXPECT_EQ(card.exit_code, j.exit_code);
  EXPECT_NE(card.out.find("  status: " + name + "\n"), std::string::npos) << card.out;
  EXPECT_NE(card.out.find("  probe_status: "), std::string::npos) << card.out;
  RunResult md = run_cli(base + " --format markdown");
  EXPECT_NE(md.out.find("### Probe measurement\n\n- predicted: "), std::string::npos) << md.out;
  EXPECT_EQ(md.out.find("Static prediction vs measurement"), std::string::npos) << md.out;

  RunResult forced = run_cli(base + " --format json --force-status COMPATIBLE");
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  auto fj = nlohmann::json::parse(forced.out);
  EXPECT_EQ(fj["verdict"], "COMPATIBLE");
  EXPECT_EQ(fj["verdict_source"], "forced");
  RunResult ft = run_cli(base + " --force-status COMPATIBLE");
  EXPECT_NE(ft.out.find("[forced by override; the check found "), std::string::npos) << ft.out;
  EXPECT_EQ(ft.out.find("measured WARNING"), std::string::npos) << ft.out;
}

TEST(CliCheckProbe, ModelTheEngineCannotRunKeepsItsStaticReport) {
  testing::TempDir tmp;
  RunResult f = run_cli("fixture " + (tmp / "moe") + " --profile qwen3-235b-a22b --tiny --sparse");
  ASSERT_EQ(f.exit_code, 0) << f.err;
  RunResult r = run_cli("check " + (tmp / "moe") + " --no-cache --probe");
  ExpectError(r, 3, "--probe: cannot measure this model");
  EXPECT_EQ(r.err.find("works on this model"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("Status: "), std::string::npos) << r.out;
}

TEST(CliProbe, ReportFileFollowsItsExtension) {
  Fixture fx;
  const std::string probe = "probe " + fx.dir + " --no-cache --tokens 8 --greedy-tokens 0";
  RunResult r = run_cli(probe + " --report " + (fx.root / "p.json"));
  ASSERT_LT(r.exit_code, 3) << r.err;
  auto j = nlohmann::json::parse(testing::read_text(fx.root / "p.json"));
  EXPECT_EQ(j["schema"], "fusecheck.probe/1");
  EXPECT_EQ(j["static_verdict"].is_string(), true);
  RunResult t = run_cli(probe + " --report " + (fx.root / "p.txt"));
  EXPECT_EQ(testing::read_text(fx.root / "p.txt").rfind("fusecheck probe: ", 0), 0u);
  RunResult forced = run_cli(probe + " --report " + (fx.root / "p.out") + " --report-format text");
  EXPECT_EQ(testing::read_text(fx.root / "p.out").rfind("fusecheck probe: ", 0), 0u);
}

// `fixture --tiny` keeps no special-token id outside its tiny vocabulary (it wrote Qwen3's
// 151643/151645 with a vocabulary of 512).
TEST(CliFixture, TinyFixtureHasNoIdsOutsideItsVocabulary) {
  Fixture fx;
  for (const char* file : {"config.json", "generation_config.json"}) {
    auto j = nlohmann::json::parse(testing::read_text(fx.dir + "/" + file));
    for (const char* k : {"bos_token_id", "eos_token_id", "pad_token_id"})
      if (j.contains(k) && j[k].is_number_integer()) {
        EXPECT_LT(j[k].get<int64_t>(), 512) << file << k;
      }
  }
}

// A folder of variants (bf16/ and fp32/, as in the reference checkpoints) points to them.
TEST(CliCheck, FolderOfModelDirectoriesPointsToThem) {
  testing::TempDir tmp;
  for (const char* sub : {"fp32", "bf16"})
    ASSERT_EQ(run_cli("fixture " + (tmp / sub) + " --profile qwen3-0.6b --tiny").exit_code, 0);
  ExpectError(run_cli("check " + tmp.path() + " --no-cache"), 3,
              "hint: the model directories inside are bf16/, fp32/");
}

// No output or shipped text speaks of a document readers do not have ("the seed", "the sprint").
TEST(CliCheck, NoSeedOrSprintWording) {
  Fixture fx;
  RunResult r = run_cli("check " + fx.dir + " --no-cache -v");
  ASSERT_LT(r.exit_code, 3) << r.err;
  for (const std::string& text :
       {r.out, run_cli("check " + fx.dir + " --no-cache --format json").out})
    for (const char* word : {"the seed", "seed's", "sprint"})
      EXPECT_EQ(text.find(word), std::string::npos) << word;
  testing::TempDir io;
  const std::string src = FUSECHECK_SOURCE_DIR;
  const std::string grep = "grep -rniE \"the seed|seed's|seed task|sprint\" " + src + "/data " +
                           src + "/docs " + src + "/README.md > " + (io / "hits");
  std::system(grep.c_str());
  EXPECT_EQ(testing::read_text(io / "hits"), "");
}

// The load-time warning names what decided: a cached probe measurement is not "extreme
// normalization weights" (the fixture's norms are ordinary).
TEST(KernelDecision, FallbackWarningNamesTheMeasurement) {
  Fixture fx;
  testing::TempDir cache_dir;
  auto model = Model::load(fx.dir);
  ASSERT_TRUE(model.ok()) << model.error().message;
  CheckOptions co;
  co.kernels = "fused";
  co.use_cache = false;
  auto check = check_model(fx.dir, co);
  ASSERT_TRUE(check.ok());
  ASSERT_EQ(check->verdict, Verdict::kCompatible);
  ProbeResult measured;
  measured.profile = "fused";
  measured.verdict = Verdict::kIncompatible;
  measured.reason = "fused vs standard KL above the budget";
  const std::string db = cache_dir / "fusecheck.db";
  ASSERT_EQ(record_locally(db, local_record(*check, &measured, ModelIdentity{})), "");
  KernelRequest req;
  req.use_custom_kernels = true;
  req.cache_dir = cache_dir.path();
  req.db_path = db;
  auto d = decide_kernels(*model, req);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->outcome, KernelOutcome::kFallback);
  EXPECT_EQ(d->message.find("extreme normalization weights"), std::string::npos) << d->message;
  EXPECT_NE(d->message.find("probe measurement"), std::string::npos) << d->message;
}

// The library reads no environment: FUSECHECK_FORCE_STATUS reaches check_model only through the
// CLI, which passes it as CheckOptions::force_verdict.
TEST(CliConventions, ForceStatusEnvironmentIsReadByTheCliOnly) {
  Fixture fx;
  setenv(kForceStatusEnv, "INCOMPATIBLE", 1);
  CheckOptions co;
  co.use_cache = false;
  auto r = check_model(fx.dir, co);
  unsetenv(kForceStatusEnv);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->overridden);
  RunResult c = run_cli("check " + fx.dir + " --no-cache", "FUSECHECK_FORCE_STATUS=INCOMPATIBLE ");
  EXPECT_EQ(c.exit_code, 2) << c.err;
}

}  // namespace
}  // namespace fusecheck
