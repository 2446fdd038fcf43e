// The engine subcommands end to end through the binary: generate prints llama2.c's story, eval
// writes transformers-comparable logits and hidden states, chat runs from a pipe, and bad input
// gets a one-line error and a non-zero exit.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "testing.h"
#include "tokenizer_testing.h"

namespace fusecheck {
namespace {

using testing::run_cli;

std::string join(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s;
}

TEST(CliGenerate, PrintsLlama2cStoryFromTokenIds) {
  const std::string root = testing::data_dir() + "/stories260K";
  auto expected = nlohmann::json::parse(testing::read_text(root + "/expected.json"));
  for (const auto& c : expected["cases"]) {
    auto prompt = c["prompt_token_ids"].get<std::vector<int32_t>>();
    const size_t n = c["generated_token_ids"].size();
    auto r = run_cli(
        fmt::format("generate {}/hf --token-ids {} -n {} --temperature 0", root, join(prompt), n));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, c["text"].get<std::string>() + "\n");
    EXPECT_NE(r.err.find("tok/s"), std::string::npos) << r.err;
    // The same prompt as text: the tokenizer gives run.c's ids, --json reports them.
    auto j = run_cli(fmt::format("generate {}/hf --prompt '{}' -n {} --temperature 0 --json", root,
                                 c["prompt"].get<std::string>(), n));
    ASSERT_EQ(j.exit_code, 0) << j.err;
    auto out = nlohmann::json::parse(j.out);
    EXPECT_EQ(out["prompt_token_ids"], c["prompt_token_ids"]);
    EXPECT_EQ(out["token_ids"], c["generated_token_ids"]);
  }
}

TEST(CliGenerate, SamplingIsSeededAndRespectsMaxTokens) {
  const std::string model = testing::data_dir() + "/stories260K/hf";
  auto gen = [&](int seed) {
    auto r = run_cli(fmt::format(
        "generate {} --prompt 'The dog' -n 30 --temperature 1.0 --top-k 40 --top-p 0.95 --min-p "
        "0.01 --seed {} --json",
        model, seed));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out)["token_ids"].get<std::vector<int32_t>>();
  };
  auto a = gen(1), b = gen(1), c = gen(2);
  EXPECT_EQ(a, b);
  EXPECT_LE(a.size(), 30u);
  EXPECT_NE(a, c);  // 30 sampled tokens from two seeds coincide with negligible probability
}

TEST(CliEval, WritesLogitsAndHiddenStatesMatchingTransformers) {
  const std::string dir = testing::data_dir() + "/hf/qwen3-tiny";
  auto meta = nlohmann::json::parse(testing::read_text(dir + "/reference.json"));
  auto ids = meta["sequences"][1].get<std::vector<int32_t>>();
  testing::TempDir tmp;
  auto r = run_cli(fmt::format("eval {}/fp32 --token-ids {} --out {} --precision fp32 --hidden",
                               dir, join(ids), tmp / "out.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto ours = SafetensorsFile::open(tmp / "out.safetensors");
  auto ref = SafetensorsFile::open(dir + "/reference.safetensors");
  ASSERT_TRUE(ours.ok() && ref.ok());
  auto cmp = [&](const std::string& mine, const std::string& theirs) {
    const TensorInfo* a = ours->find(mine);
    const TensorInfo* b = ref->find(theirs);
    ASSERT_TRUE(a && b) << mine;
    EXPECT_TRUE(same_shape(a->shape, b->shape)) << mine;
    auto x = *ours->read_f32(*a), y = *ref->read_f32(*b);
    double num = 0, den = 0;
    for (size_t i = 0; i < x.size(); ++i) num += (x[i] - y[i]) * (x[i] - y[i]), den += y[i] * y[i];
    EXPECT_LT(std::sqrt(num / den), 1e-4) << mine;
  };
  cmp("logits", "logits_fp32.1");
  for (int l = 0; l <= 4; ++l) cmp(fmt::format("hidden.{}", l), fmt::format("hidden_fp32.1.{}", l));
}

TEST(CliChat, RefusesAModelWithoutAChatTemplate) {
  auto r = run_cli("chat " + testing::data_dir() + "/stories260K/hf < /dev/null");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("tokenizer_config.json"), std::string::npos) << r.err;
}

// chat from a pipe on a Qwen3-architecture model with the real Qwen3 tokenizer (from the npm
// oracle) and tiny random weights: two turns, the second reusing the first's cached prefix, then
// /reset and a turn that starts over.
TEST(CliChat, MultiTurnFromAPipeReusesThePrefix) {
  FC_REQUIRE_ORACLE();
  testing::TempDir tmp;
  testing::write_text(tmp / "profiles.json", R"({"profiles": [{"name": "qwen3-chat", "config": {
      "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "head_dim": 16,
      "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
      "num_key_value_heads": 1, "num_hidden_layers": 2, "max_position_embeddings": 4096,
      "rms_norm_eps": 1e-6, "rope_theta": 1000000, "tie_word_embeddings": true,
      "vocab_size": 151936, "bos_token_id": 151643, "eos_token_id": 151645},
      "gains": {"input_layernorm": {"median": 1.0, "sigma": 0.25},
                "post_attention_layernorm": {"median": 1.0, "sigma": 0.25},
                "q_norm": {"median": 1.0, "sigma": 0.25}, "k_norm": {"median": 1.0, "sigma": 0.25},
                "final_norm": {"median": 1.0, "sigma": 0.25}}}]})");
  const std::string m = tmp / "m";
  auto f =
      run_cli("fixture " + m + " --profiles " + (tmp / "profiles.json") + " --profile qwen3-chat");
  ASSERT_EQ(f.exit_code, 0) << f.err;
  for (const char* file : {"tokenizer.json", "tokenizer_config.json"})
    testing::write_text(m + "/" + file,
                        testing::read_text(testing::qwen3_model_dir() + "/" + file));
  auto r = run_cli("chat " + m + " -n 6 --temperature 0 --no-thinking",
                   "printf 'Hello there\nAnd again\n/reset\nHello there\n/exit\n' | ");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // One speed line per turn: "prompt N tok, ...".
  std::vector<int> prompt_tokens;
  for (size_t pos = 0; (pos = r.err.find("prompt ", pos)) != std::string::npos; pos += 7)
    prompt_tokens.push_back(std::stoi(r.err.substr(pos + 7)));
  ASSERT_EQ(prompt_tokens.size(), 3u) << r.err;
  // Turn 1 renders "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n<think>..."
  // in full; turn 2 re-renders the conversation but prefills only the part after the cached prefix;
  // after /reset the same first turn is prefilled in full again.
  // Turn 2 re-renders about p0 - 4 tokens of turn 1 (its empty think block goes), the <= 6-token
  // reply and ~16 tokens of the new turn: about p0 + 18 without reuse, about 20 with it.
  EXPECT_GT(prompt_tokens[0], 10);
  EXPECT_LT(prompt_tokens[1], prompt_tokens[0] + 12) << "the cached prefix was not reused";
  EXPECT_EQ(prompt_tokens[2], prompt_tokens[0]);
}

// A Qwen3-0.6B-shaped model (tiny widths, real layer count) from the fixture generator runs
// prefill and decode from token ids; it has no tokenizer, so output is ids.
TEST(CliGenerate, RunsTheQwen3Fixture) {
  testing::TempDir tmp;
  ASSERT_EQ(run_cli("fixture " + (tmp / "m") + " --profile qwen3-0.6b --tiny").exit_code, 0);
  auto r = run_cli("generate " + (tmp / "m") + " --token-ids 1,2,3,4 -n 5 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["token_ids"].size(), 5u);
  EXPECT_NE(r.err.find("tok/s"), std::string::npos);
  // --prompt needs a tokenizer this checkpoint does not have.
  auto p = run_cli("generate " + (tmp / "m") + " --prompt hi");
  EXPECT_EQ(p.exit_code, 3);
  EXPECT_NE(p.err.find("tokenizer.json: not found"), std::string::npos) << p.err;
}

TEST(CliEngine, BadInputIsOneLineAndNonZero) {
  testing::TempDir tmp;
  ASSERT_EQ(run_cli("fixture " + (tmp / "m") + " --profile qwen3-0.6b --tiny").exit_code, 0);
  const std::string m = tmp / "m";
  struct Case {
    std::string args;
    int code;
    std::string needle;
  } cases[] = {
      {"generate " + m + " --token-ids 1,x,3", 64, "not a token id"},
      {"generate " + m + " --token-ids 99999999", 3, "outside the model's vocabulary"},
      {"generate " + m + " --token-ids 1 --precision fp16", 64, "precision"},
      {"generate " + m, 64, "--token-ids"},
      {"generate " + m + " --token-ids 1,2,3 --max-context 2", 3, "max-context"},
      {"eval " + m + " --token-ids 1,2 --out " + (tmp / "no/such/dir/x.safetensors"), 74,
       "x.safetensors"},
      {"generate " + (tmp / "missing") + " --token-ids 1", 3, "missing"},
  };
  for (const auto& c : cases) {
    auto r = run_cli(c.args);
    EXPECT_EQ(r.exit_code, c.code) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.args << "\n" << r.err;
  }
}

}  // namespace
}  // namespace fusecheck

namespace fusecheck {
namespace {

TEST(CliBench, ReportsSpeedMemoryAndRooflineAsJson) {
  testing::TempDir tmp;
  ASSERT_EQ(run_cli("fixture " + (tmp / "m") + " --profile qwen3-0.6b --tiny").exit_code, 0);
  auto r = run_cli("bench " + (tmp / "m") +
                   " --prompt-tokens 8 --gen-tokens 4 --repeat 2 --threads 1 --compare --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"prefill_tokens_per_s", "decode_tokens_per_s", "bandwidth_gbs",
                          "decode_roofline_tokens_per_s", "roofline_fraction", "resident_bytes",
                          "fused_over_standard_decode"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_GT(j["decode_tokens_per_s"].get<double>(), 0.0);
  EXPECT_EQ(j["threads"], 1);
  EXPECT_EQ(j["kernels"], "standard");
  EXPECT_EQ(j["fused"]["kernels"], "fused");
}

}  // namespace
}  // namespace fusecheck
