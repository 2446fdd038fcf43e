// Architecture profiles (src/arch): parsed with simdjson since the check's speed work, with the
// behaviour the nlohmann parse had (a differential run of both on 50,000 mutated documents agreed,
// docs/PERFORMANCE.md): a repeated key takes its last value, a leading UTF-8 BOM is skipped, and
// each fault is the same one-line error.
#include <gtest/gtest.h>

#include "arch/arch_profile.h"

namespace fusecheck {
namespace {

std::string profile(const std::string& extra = "", const std::string& name = R"("name": "a")") {
  return R"({"architectures": [{)" + name +
         R"(, "model_types": ["m"], "tensor_prefixes": ["model."],
    "gain_convention": "w", "qk_norm_scope": "none",
    "norms": [{"role": "r", "tensor": "norm.weight", "kind": "final", "size": "hidden"}])" +
         extra + "}]}";
}

TEST(ArchProfiles, BuiltInProfilesParse) {
  auto reg = ArchRegistry::load("");
  ASSERT_TRUE(reg.ok()) << reg.error().message;
  auto qwen3 = reg->find("qwen3", "config.json");
  ASSERT_TRUE(qwen3.ok()) << qwen3.error().message;
  EXPECT_EQ((*qwen3)->norms.size(), 5u);
  EXPECT_TRUE((*qwen3)->has_decoder);
}

TEST(ArchProfiles, RepeatedKeyTakesTheLastValueAndABomIsSkipped) {
  auto reg = ArchRegistry::parse(profile("", R"("name": "first", "name": "last")"), "p.json");
  ASSERT_TRUE(reg.ok()) << reg.error().message;
  EXPECT_EQ(reg->profiles().at(0).name, "last");
  auto bom = ArchRegistry::parse("\xEF\xBB\xBF" + profile(), "p.json");
  ASSERT_TRUE(bom.ok()) << bom.error().message;
  EXPECT_EQ(bom->profiles().at(0).name, "a");
}

TEST(ArchProfiles, FaultsAreOneLineErrors) {
  const std::pair<std::string, std::string> cases[] = {
      {"[]", "p.json: expected a JSON object with an \"architectures\" array"},
      {"{\"architectures\": [1]}", "p.json: every architecture needs a \"name\""},
      {profile(", \"decoder\": []"), "p.json: architecture \"a\": \"decoder\" must be an object"},
      {profile(R"(, "gain_convention": "x")"),  // repeated: the last value is the one checked
       "p.json: architecture \"a\": \"gain_convention\" = \"x\" is not one of w, one_plus_w"},
  };
  for (const auto& [doc, want] : cases) {
    auto r = ArchRegistry::parse(doc, "p.json");
    ASSERT_FALSE(r.ok()) << doc;
    EXPECT_EQ(r.error().message, want);
  }
}

// A key nothing reads is refused at every level, naming where it is: a misspelt tensor name in
// "layer" would otherwise leave, e.g., the q_norm unapplied by the engine while the profile loads.
TEST(ArchProfiles, UnknownKeysAreRefusedAtEveryLevel) {
  const std::string decoder = R"(, "decoder": {"embed_tokens": "e", "final_norm": "n",
    "layer": {"input_norm": "a", "q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o",
    "post_attention_norm": "p", "gate_proj": "g", "up_proj": "u", "down_proj": "d"X}})";
  const auto with = [&](const std::string& x) {
    return profile(decoder.substr(0, decoder.find('X')) + x +
                   decoder.substr(decoder.find('X') + 1));
  };
  ASSERT_TRUE(ArchRegistry::parse(with(""), "p.json").ok());
  ASSERT_TRUE(ArchRegistry::parse(with(R"(, "comment": "documented")"), "p.json").ok());
  const std::pair<std::string, std::string> cases[] = {
      {with(R"(, "q_nrom": "qn")"),
       "p.json: architecture \"a\" decoder layer: unknown key \"q_nrom\""},
      {profile(R"(, "gain_conventoin": "w")"),
       "p.json: architecture \"a\": unknown key \"gain_conventoin\""},
      {R"({"architectures": [], "architecture": []})", "p.json: unknown key \"architecture\""},
      {profile().replace(profile().find("\"size\""), 6, "\"sise\""),
       "p.json: architecture \"a\" norm \"r\": unknown key \"sise\""},
  };
  for (const auto& [doc, want] : cases) {
    auto r = ArchRegistry::parse(doc, "p.json");
    ASSERT_FALSE(r.ok()) << doc;
    EXPECT_EQ(r.error().message, want);
  }
}

}  // namespace
}  // namespace fusecheck
