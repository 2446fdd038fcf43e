// Shared test helpers: scratch directories, running the CLI, locating ../shared.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace fusecheck::testing {

// ../shared beside the source tree, or "" when absent (users do not have it).
std::string shared_dir();
// Skips the calling test with a clear message when ../shared is absent.
#define FC_REQUIRE_SHARED()                                                      \
  do {                                                                           \
    if (::fusecheck::testing::shared_dir().empty())                              \
      GTEST_SKIP() << "../shared (reference checkpoints) not present; skipping"; \
  } while (0)

// A fresh directory under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs build/fusecheck with a shell-quoted argument string; env is prepended ("VAR=x ").
RunResult run_cli(const std::string& args, const std::string& env = "");

void write_text(const std::string& path, const std::string& contents);
std::string read_text(const std::string& path);

}  // namespace fusecheck::testing
