// The engine on the GPU (LoadOptions.device = "cuda") against the engine on the CPU: greedy
// tokens must be equal for the tiny transformers checkpoints (fp32 and bf16) and for stories260K,
// whose CPU tokens are in turn llama2.c's (expected.json), in fp32 and model precision, with the
// standard and fused kernel plans. Skips when the build has no CUDA backend or no GPU is present.
//
// The data directories can be moved (the GPU machine runs a copy of the binary):
// FUSECHECK_TEST_DATA_DIR overrides tests/data, FUSECHECK_STORIES_DIR the stories260K directory.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "kernels/kernel_plan.h"
#include "kernels/numerics_profile.h"
#include "model/generate.h"
#include "testing.h"

namespace fusecheck {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = getenv(name);
  return v && *v ? std::string(v) : fallback;
}

bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// Loads `dir` on the GPU, or says why it cannot (then the test skips).
Result<Model> load_cuda(const std::string& dir) {
  LoadOptions o;
  o.device = "cuda";
  return Model::load(dir, o);
}

#define FC_LOAD_CUDA_OR_SKIP(var, dir) \
  auto var = load_cuda(dir);           \
  if (!var.ok()) GTEST_SKIP() << "no GPU engine: " << var.error().message << "; skipping"

// Greedy tokens of `m` from `prompt`: up to n tokens, stopping before `stop` (if >= 0).
std::vector<int32_t> greedy(const Model& m, Precision p, const KernelPlan* plan,
                            const std::vector<int32_t>& prompt, int64_t n, int32_t stop) {
  Session s(m, p, 0, plan);
  EXPECT_TRUE(s.feed(prompt).ok());
  Sampler sampler(SamplingParams{});  // temperature 0: argmax
  std::vector<int32_t> stops;
  if (stop >= 0) stops.push_back(stop);
  auto got = s.generate(n, sampler, stops, nullptr);
  EXPECT_TRUE(got.ok()) << (got.ok() ? "" : got.error().message);
  return got.ok() ? *got : std::vector<int32_t>{};
}

// The plans compared: standard (nullptr) and the fused profiles of data/kernels.json.
std::vector<std::pair<std::string, KernelPlan>> plans(const Model& m) {
  std::vector<std::pair<std::string, KernelPlan>> out;
  auto reg = NumericsRegistry::load("");
  EXPECT_TRUE(reg.ok());
  if (!reg.ok()) return out;
  for (const char* name : {"fused", "fused-int8kv", "fused-fp8kv", "fused-int8kv-channel"}) {
    auto prof = reg->find(name);
    EXPECT_TRUE(prof.ok()) << name;
    if (prof.ok()) out.emplace_back(name, KernelPlan::from_profile(*prof, m.config().num_layers));
  }
  return out;
}

// Every precision and plan: GPU tokens == CPU tokens.
void expect_same_tokens(const Model& cpu, const Model& gpu, const std::vector<int32_t>& prompt,
                        int64_t n, int32_t stop, const std::string& what) {
  for (Precision p : {Precision::kFp32, Precision::kModel}) {
    const char* pn = p == Precision::kFp32 ? "fp32" : "model";
    const auto want = greedy(cpu, p, nullptr, prompt, n, stop);
    ASSERT_FALSE(want.empty()) << what << " " << pn;
    EXPECT_EQ(greedy(gpu, p, nullptr, prompt, n, stop), want) << what << " " << pn << " standard";
    for (const auto& [name, plan] : plans(cpu)) {
      const auto want_f = greedy(cpu, p, &plan, prompt, n, stop);
      EXPECT_EQ(greedy(gpu, p, &plan, prompt, n, stop), want_f) << what << " " << pn << " " << name;
    }
    EXPECT_TRUE(gpu.backend().status().ok()) << gpu.backend().status().error().message;
  }
}

TEST(GpuEngine, TinyQwen3GreedyEqualsCpu) {
  const std::string data = env_or("FUSECHECK_TEST_DATA_DIR", FUSECHECK_TEST_DATA);
  for (const char* dtype : {"fp32", "bf16"}) {
    const std::string dir = data + "/hf/qwen3-tiny-extreme/" + dtype;
    FC_LOAD_CUDA_OR_SKIP(gpu, dir);
    auto cpu = Model::load(dir);
    ASSERT_TRUE(cpu.ok()) << cpu.error().message;
    EXPECT_EQ(gpu->device(), "cuda");
    expect_same_tokens(*cpu, *gpu, {1, 17, 42, 99, 7, 3, 250, 64, 11}, 48, -1, dir);
  }
}

TEST(GpuEngine, Stories260KGreedyEqualsLlama2cAndCpu) {
  const std::string root = env_or("FUSECHECK_STORIES_DIR", testing::data_dir() + "/stories260K");
  FC_LOAD_CUDA_OR_SKIP(gpu, root + "/hf");
  auto cpu = Model::load(root + "/hf");
  ASSERT_TRUE(cpu.ok()) << cpu.error().message;
  auto expected = nlohmann::json::parse(testing::read_text(root + "/expected.json"));
  for (const auto& c : expected["cases"]) {
    auto prompt = c["prompt_token_ids"].get<std::vector<int32_t>>();
    auto want = c["generated_token_ids"].get<std::vector<int32_t>>();
    // run.c forwards positions 0 .. steps-1 and stops early when the argmax is BOS (1).
    const int64_t budget = c["steps"].get<int64_t>() - static_cast<int64_t>(prompt.size()) + 1;
    for (Precision p : {Precision::kFp32, Precision::kModel})  // the oracle itself, on the GPU
      EXPECT_EQ(greedy(*gpu, p, nullptr, prompt, budget, 1), want) << c["prompt"];
    expect_same_tokens(*cpu, *gpu, prompt, budget, 1, "stories260K");
  }
}

TEST(GpuEngine, UnknownDeviceIsRefused) {
  LoadOptions o;
  o.device = "tpu";
  auto m = Model::load(
      env_or("FUSECHECK_TEST_DATA_DIR", FUSECHECK_TEST_DATA) + "/hf/qwen3-tiny-extreme/fp32", o);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("--device"), std::string::npos) << m.error().message;
}

}  // namespace
}  // namespace fusecheck
