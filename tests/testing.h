// Shared test helpers: scratch directories, running the CLI, locating tests/data.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace fusecheck::testing {

// tests/data in the source tree: the committed reference checkpoints and oracle outputs
// (tests/data/*/README.md say where each came from). Always present: a missing file fails.
std::string data_dir();

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
