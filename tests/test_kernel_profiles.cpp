// Kernel profiles (data/kernels.json, --kernel-profiles FILE): the built-in file parses, and a key
// nothing reads is a one-line error naming where it is, at every level. Without that a misspelt
// "kv_cache" would silently make an int8 profile lossless, and its verdicts with it.
#include <gtest/gtest.h>

#include "kernels/numerics_profile.h"

namespace fusecheck {
namespace {

std::string doc(const std::string& profile_extra, const std::string& root_extra = "") {
  return R"({"profiles": [{"name": "k", "kv_cache": {"format": "int8", "scale": "per_tensor"},
    "static_rules": {"worst": "WARNING"}, "fusion": ["attention"])" +
         profile_extra + R"(}], "dots": [{"name": "contract", "weights": ["bf16"]}])" + root_extra +
         "}";
}

TEST(KernelProfiles, BuiltInAndCommentedProfilesParse) {
  auto reg = NumericsRegistry::load("");
  ASSERT_TRUE(reg.ok()) << reg.error().message;
  auto int8 = reg->find("fused-int8kv");
  ASSERT_TRUE(int8.ok()) << int8.error().message;
  EXPECT_EQ(int8->kv_format, KvFormat::kInt8);
  auto mine =
      NumericsRegistry::parse(doc(R"(, "comment": "ours")", R"(, "comment": "file")"), "k.json");
  ASSERT_TRUE(mine.ok()) << mine.error().message;
  EXPECT_EQ(mine->find("k")->kv_format, KvFormat::kInt8);
}

TEST(KernelProfiles, UnknownKeysAreRefusedAtEveryLevel) {
  std::string kv_typo = doc("");
  kv_typo.replace(kv_typo.find("\"kv_cache\""), 10, "\"kv_cahce\"");
  std::string scale_typo = doc("");
  scale_typo.replace(scale_typo.find("\"scale\""), 7, "\"scael\"");
  std::string rule_typo = doc("");
  rule_typo.replace(rule_typo.find("\"worst\""), 7, "\"wrost\"");
  std::string dot_typo = doc("");
  dot_typo.replace(dot_typo.find("\"weights\""), 9, "\"weigths\"");
  const std::pair<std::string, std::string> cases[] = {
      {kv_typo, "k.json: kernel profile \"k\": unknown key \"kv_cahce\""},
      {scale_typo, "k.json: kernel profile \"k\": \"kv_cache\": unknown key \"scael\""},
      {rule_typo, "k.json: kernel profile \"k\": \"static_rules\": unknown key \"wrost\""},
      {dot_typo, "k.json: dot \"contract\": unknown key \"weigths\""},
      {doc("", R"(, "profile": [])"), "k.json: unknown key \"profile\""},
  };
  for (const auto& [text, want] : cases) {
    auto r = NumericsRegistry::parse(text, "k.json");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().message, want);
  }
}

}  // namespace
}  // namespace fusecheck
