// stories260K: a real trained Llama (llama2.c's tinyllamas), converted to Hugging Face format.
// tests/data/stories260K/expected.json holds llama2.c run.c's greedy outputs (temperature 0,
// 200 steps); the engine must reproduce them token for token through its KV cache.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/generate.h"
#include "testing.h"

namespace fusecheck {
namespace {

TEST(Stories260K, GreedyMatchesLlama2c) {
  const std::string root = testing::data_dir() + "/stories260K";
  auto m = Model::load(root + "/hf");
  ASSERT_TRUE(m.ok()) << m.error().message;
  auto expected = nlohmann::json::parse(testing::read_text(root + "/expected.json"));
  for (const auto& c : expected["cases"]) {
    auto prompt = c["prompt_token_ids"].get<std::vector<int32_t>>();
    auto want = c["generated_token_ids"].get<std::vector<int32_t>>();
    // run.c forwards positions 0 .. steps-1 and stops early when the argmax is BOS (1).
    const int64_t budget = c["steps"].get<int64_t>() - static_cast<int64_t>(prompt.size()) + 1;
    for (Precision p : {Precision::kFp32, Precision::kModel}) {  // an fp32 checkpoint: the same
      Session s(*m, p, 0);
      ASSERT_TRUE(s.feed(prompt).ok());
      Sampler greedy(SamplingParams{});
      const int32_t bos = 1;
      auto got = s.generate(budget, greedy, {&bos, 1}, nullptr);
      ASSERT_TRUE(got.ok()) << got.error().message;
      EXPECT_EQ(*got, want) << c["prompt"];
    }
  }
}

}  // namespace
}  // namespace fusecheck
