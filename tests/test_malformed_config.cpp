// Hostile config.json files and missing or misshapen norm tensors: one clear error line (exit 3)
// from `fusecheck check`, never a crash or a huge allocation.
#include <chrono>
#include <utility>
#include <vector>

#include "malformed_testing.h"

namespace fusecheck {
namespace {

using namespace malformed;  // NOLINT(google-build-using-namespace): the suite's shared helpers

TEST(MalformedConfig, NotJson) {
  TinyModel m;
  m.write();
  write_text(m.dir + "/config.json", "{\"model_type\": \"qwen3\", ");  // truncated download
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/config.json", "not valid JSON"));
}

TEST(MalformedConfig, NotAnObject) {
  TinyModel m;
  m.write();
  write_text(m.dir + "/config.json", "[\"qwen3\"]");
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/config.json", "expected a JSON object"));
}

TEST(MalformedConfig, BillionLayersFailsFast) {
  TinyModel m;
  m.config["num_hidden_layers"] = 1e9;
  m.write();
  auto t0 = std::chrono::steady_clock::now();
  auto r = check(m.dir);
  auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(IsError(r, m.dir + "/config.json", "\"num_hidden_layers\" = 1000000000"));
  EXPECT_LT(elapsed, std::chrono::seconds(2));
}

TEST(MalformedConfig, HugeFloatLayerCountIsOutOfRange) {
  TinyModel m;  // integral but far beyond int64: a range error (converting it to int64 is UB)
  m.config["num_hidden_layers"] = 1e300;
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/config.json",
                      "\"num_hidden_layers\" = 1e+300 is outside the plausible range"));
}

TEST(MalformedConfig, MoreLayersThanTheCheckpointHolds) {
  TinyModel m;  // in range, but the weights hold one layer: an error about layer 1, quickly
  m.config["num_hidden_layers"] = 10000;
  m.write();
  auto t0 = std::chrono::steady_clock::now();
  auto r = check(m.dir);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_TRUE(IsError(r, m.dir, "config.json says 10000 layers"));
  EXPECT_TRUE(IsError(r, m.dir, "model.layers.1."));
}

TEST(MalformedConfig, NegativeAttentionHeads) {
  TinyModel m;
  m.config["num_attention_heads"] = -2;
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/config.json", "\"num_attention_heads\" = -2"));
}

TEST(MalformedConfig, HeadDimZero) {
  TinyModel m;
  m.config["head_dim"] = 0;
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/config.json", "\"head_dim\" = 0 is outside"));
}

TEST(MalformedConfig, HiddenSizeAsString) {
  TinyModel m;
  m.config["hidden_size"] = "8";
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/config.json", "\"hidden_size\" must be an integer"));
  ExpectCliInputError(m.dir, "\"hidden_size\" must be an integer");
}

TEST(MalformedConfig, UnknownModelTypeListsKnownTypes) {
  TinyModel m;
  m.config["model_type"] = "gpt9";
  m.write();
  auto r = check(m.dir);
  EXPECT_TRUE(IsError(r, m.dir + "/config.json", "model_type \"gpt9\""));
  EXPECT_TRUE(IsError(r, m.dir + "/config.json", "known: qwen3, qwen3_moe, llama"));
}

TEST(MalformedConfig, MissingModelType) {
  TinyModel m;
  m.config.erase("model_type");
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/config.json", "missing \"model_type\""));
}

// ---------------------------------------------------------------------------------------------
// Norm tensors the architecture profile requires.

TEST(MalformedCheckpoint, MissingNormTensor) {
  TinyModel m(2);
  m.weights.remove(k_norm(1));
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.dir, "missing tensor \"" + k_norm(1) + "\""));
}

TEST(MalformedCheckpoint, NoLayerZeroNormsAtAnyPrefix) {
  TinyModel m;
  m.weights.remove(layer_tensor(0, "input_layernorm.weight"));
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.dir, "not a qwen3 model"));
}

TEST(MalformedCheckpoint, NormWithWrongShape) {
  TinyModel m;
  m.weights.at(k_norm(0)).shape = {2, 2};
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "has shape [2, 2], expected [4]"));
}

// A thresholds file is read key by key over the built-in one: a key nothing reads (a typo, at the
// top or inside "weights") would leave the default in force unseen, so it is an input error
// naming the file and the key. "comment" is allowed; the known keys still apply.
TEST(MalformedConfig, ThresholdsFileWithAnUnknownKey) {
  TinyModel m;
  m.write();
  TempDir t;
  const std::string file = t / "thresholds.json";
  for (const auto& [text, key] : std::vector<std::pair<std::string, std::string>>{
           {R"({"max_safe_weight_ratoi": 30})", "\"max_safe_weight_ratoi\""},
           {R"({"weights": {"weight_ratio": 0.4, "amplification": 0.3, "extreme_layers": 0.2,
                "varaince": 0.1}})",
            "\"varaince\""}}) {
    write_text(file, text);
    CheckOptions o = no_cache();
    o.thresholds_file = file;
    EXPECT_TRUE(IsError(check_model(m.dir, o), file, "unknown key " + key));
    RunResult r = run_cli("check " + shq(m.dir) + " --no-cache --thresholds " + shq(file));
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  write_text(file, R"({"comment": "stricter", "max_safe_weight_ratio": 1.5})");
  CheckOptions o = no_cache();
  o.thresholds_file = file;
  auto r = check_model(m.dir, o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->thresholds.max_safe_weight_ratio, 1.5);
}

}  // namespace
}  // namespace fusecheck
