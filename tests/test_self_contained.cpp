// The suite runs from a clean clone (every reference is committed under tests/data), and the check
// path does not load the engine's SIMD library (Highway's start-up costs ~3 ms per process).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "testing.h"

namespace fusecheck {
namespace {

bool is_file(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

TEST(SelfContained, EveryReferenceIsInTestsData) {
  const std::string d = testing::data_dir();
  for (std::string m : {"qwen3-tiny", "llama-tiny", "qwen2-tiny", "qwen3-tiny-extreme"}) {
    for (std::string f : {"fp32/config.json", "fp32/model.safetensors", "bf16/config.json",
                          "bf16/model.safetensors", "reference.json", "reference.safetensors",
                          "reference_ext.json", "reference_ext.safetensors"})
      EXPECT_TRUE(is_file(d + "/hf/" + m + "/" + f)) << m << "/" << f;
  }
  for (std::string f : {"hf/config.json", "hf/model.safetensors", "hf/tokenizer.json",
                        "expected.json", "vocab.json", "LICENSE", "README.md"})
    EXPECT_TRUE(is_file(d + "/stories260K/" + f)) << f;
  EXPECT_TRUE(is_file(d + "/tokenizer/qwen3.json"));
}

TEST(SelfContained, CheckDoesNotLoadHighway) {
  // The dynamic loader names every library it initialises; libhwy must not be among them.
  auto r = testing::run_cli("check " + testing::data_dir() + "/hf/qwen3-tiny/bf16 --no-cache",
                            "LD_DEBUG=libs");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("calling init"), std::string::npos) << "LD_DEBUG had no effect";
  EXPECT_EQ(r.err.find("libhwy"), std::string::npos) << "check loaded Highway";
}

}  // namespace
}  // namespace fusecheck
