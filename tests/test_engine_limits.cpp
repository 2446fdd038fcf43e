// Input limits of the engine commands (generate, eval, tokenize): prompts longer than the context,
// empty prompts and id lists, invalid UTF-8, token ids out of range and -n 0 give a one-line error
// or a defined result, never UB. Real checkpoints: stories260K (tests/data) has a tokenizer; the
// tiny Qwen3 fixture has none (ids only).
#include <algorithm>
#include <nlohmann/json.hpp>

#include "testing.h"

namespace fusecheck {
namespace {

using testing::run_cli;
using testing::RunResult;

std::string stories() {
  return testing::data_dir() + "/stories260K/hf";
}

// A tiny Qwen3 fixture without a tokenizer (vocab 512), made once for the suite.
const std::string& fixture_dir() {
  static testing::TempDir* root = [] {
    auto* t = new testing::TempDir;  // lives for the process: the suite's shared read-only model
    RunResult r = run_cli("fixture " + (*t / "m") + " --profile qwen3-0.6b --tiny");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return t;
  }();
  static const std::string dir = *root / "m";
  return dir;
}

// One clear error line with exit 3 (input error), or 64 (usage), naming `needle`.
void ExpectOneLineError(const RunResult& r, int code, std::string_view needle,
                        const std::string& what) {
  EXPECT_EQ(r.exit_code, code) << what << "\n" << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << what << "\n" << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << what << "\n" << r.err;
}

TEST(EngineLimits, PromptLongerThanMaxContext) {
  std::string long_prompt(400, 'a');
  for (size_t i = 1; i < long_prompt.size(); i += 2) long_prompt[i] = ' ';
  RunResult r =
      run_cli("generate " + stories() + " --prompt '" + long_prompt + "' --max-context 16");
  ExpectOneLineError(r, 3, "max-context", "prompt > --max-context");
  RunResult ids = run_cli("generate " + fixture_dir() + " --token-ids 1,2,3,4,5 --max-context 4");
  ExpectOneLineError(ids, 3, "max-context", "ids > --max-context");
  RunResult e = run_cli("eval " + fixture_dir() + " --token-ids 1,2,3,4,5 --max-context 4 --out " +
                        (testing::TempDir() / "x.safetensors"));
  ExpectOneLineError(e, 3, "max-context", "eval ids > --max-context");
}

TEST(EngineLimits, GenerationPastMaxContextStopsWithANote) {
  // The prompt fits but prompt + -n does not: generation stops at the limit with a one-line note
  // and exit 0 (what was generated stands), never a write past the KV cache (the engine sizes it
  // from --max-context).
  RunResult r =
      run_cli("generate " + fixture_dir() + " --token-ids 1,2,3 --max-context 6 -n 50 --json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("fusecheck: note: stopped after 4 tokens: the context is full"),
            std::string::npos)
      << r.err;
  RunResult fits =
      run_cli("generate " + fixture_dir() + " --token-ids 1,2,3 --max-context 6 -n 3 --json");
  EXPECT_EQ(fits.exit_code, 0) << fits.err;
}

// An explicit --max-context past max_position_embeddings runs (the user asked for it) but notes
// the positions beyond it were never trained; up to it, nothing is said.
TEST(EngineLimits, MaxContextPastTheTrainedContextWarns) {
  auto cfg = nlohmann::json::parse(testing::read_text(fixture_dir() + "/config.json"));
  const int64_t trained = cfg.at("max_position_embeddings").get<int64_t>();
  const std::string gen = "generate " + fixture_dir() + " --token-ids 1,2 -n 1 --max-context ";
  RunResult past = run_cli(gen + std::to_string(trained + 1));
  EXPECT_EQ(past.exit_code, 0) << past.err;
  EXPECT_NE(past.err.find("past the model's max_position_embeddings " + std::to_string(trained)),
            std::string::npos)
      << past.err;
  RunResult at = run_cli(gen + std::to_string(trained));
  EXPECT_EQ(at.exit_code, 0) << at.err;
  EXPECT_EQ(at.err.find("max_position_embeddings"), std::string::npos) << at.err;
}

// Regression: the "needs N MiB of KV cache" message multiplied --max-context by the bytes per
// position in int64 (signed overflow, UB; it printed "-1 MiB" for INT64_MAX).
TEST(EngineLimits, HugeMaxContextIsRefusedWithoutOverflow) {
  for (std::string mc : {"100000000000", "9223372036854775807"}) {
    RunResult r = run_cli("generate " + fixture_dir() + " --token-ids 1,2 --max-context " + mc);
    ExpectOneLineError(r, 3, "MiB of KV cache", "--max-context " + mc);
    EXPECT_EQ(r.err.find("needs -"), std::string::npos) << r.err;
  }
  for (std::string mc : {"0", "-5", "99999999999999999999999"}) {  // not a 64-bit count: usage
    RunResult r = run_cli("generate " + fixture_dir() + " --token-ids 1,2 --max-context " + mc);
    ExpectOneLineError(r, 64, "--max-context", "--max-context " + mc);
  }
}

TEST(EngineLimits, EmptyPromptIsAUsageError) {
  for (std::string model : {stories(), fixture_dir()}) {
    RunResult r = run_cli("generate " + model + " --prompt ''");
    ExpectOneLineError(r, 64, "--prompt", model);
  }
}

TEST(EngineLimits, EmptyTokenIds) {
  for (std::string model : {fixture_dir()}) {
    RunResult g = run_cli("generate " + model + " --token-ids ''");
    EXPECT_NE(g.exit_code, 0) << "generate --token-ids ''";
    EXPECT_LT(g.exit_code, 128) << "crashed: " << g.err;
    EXPECT_EQ(std::count(g.err.begin(), g.err.end(), '\n'), 1) << g.err;
    RunResult c = run_cli("generate " + model + " --token-ids ,");
    ExpectOneLineError(c, 64, "empty item", "--token-ids ,");
    RunResult e = run_cli("eval " + model + " --token-ids '' --out " +
                          (testing::TempDir() / "x.safetensors"));
    EXPECT_NE(e.exit_code, 0) << "eval --token-ids ''";
    EXPECT_LT(e.exit_code, 128) << "crashed: " << e.err;
    EXPECT_EQ(std::count(e.err.begin(), e.err.end(), '\n'), 1) << e.err;
  }
}

TEST(EngineLimits, InvalidUtf8PromptIsReplacedNotFatal) {
  // As documented for Tokenizer::encode: invalid UTF-8 becomes U+FFFD first.
  RunResult r =
      run_cli("generate " + stories() + " --prompt \"$(printf 'a\\377b\\300')\" -n 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);  // the JSON output must stay valid UTF-8
  EXPECT_FALSE(j.is_discarded()) << r.out;
  RunResult t = run_cli("tokenize " + stories() + " --text \"$(printf '\\377\\376')\" --json");
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_FALSE(nlohmann::json::parse(t.out, nullptr, false).is_discarded()) << t.out;
}

TEST(EngineLimits, TokenIdsOutOfRange) {
  const std::string m = fixture_dir();
  // 512 is an id outside the vocabulary (input error, 3); the others are not token ids at all
  // (usage error, 64, as for -n abc).
  for (std::string ids : {"512", "-1", "2147483648", "99999999999999999999", "1,2,1e3"}) {
    const int code = ids == "512" ? 3 : 64;
    RunResult g = run_cli("generate " + m + " --token-ids " + ids);
    EXPECT_EQ(g.exit_code, code) << ids << "\n" << g.err;
    EXPECT_EQ(std::count(g.err.begin(), g.err.end(), '\n'), 1) << ids << "\n" << g.err;
    RunResult e = run_cli("eval " + m + " --token-ids " + ids + " --out " +
                          (testing::TempDir() / "x.safetensors"));
    EXPECT_EQ(e.exit_code, code) << ids << "\n" << e.err;
    EXPECT_EQ(std::count(e.err.begin(), e.err.end(), '\n'), 1) << ids << "\n" << e.err;
  }
  RunResult t = run_cli("tokenize " + stories() + " --decode 1,-5,70000,2147483647");
  EXPECT_EQ(t.exit_code == 0 || t.exit_code == 3, true) << t.err;
}

TEST(EngineLimits, MaxTokensZeroGeneratesNothing) {
  RunResult r = run_cli("generate " + fixture_dir() + " --token-ids 1,2 -n 0 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  ASSERT_TRUE(j.contains("token_ids")) << r.out;
  EXPECT_TRUE(j["token_ids"].empty()) << r.out;
  RunResult neg = run_cli("generate " + fixture_dir() + " --token-ids 1,2 -n -1");
  EXPECT_NE(neg.exit_code, 0) << neg.out;
  EXPECT_LT(neg.exit_code, 128) << neg.err;
}

}  // namespace
}  // namespace fusecheck
