#include "testing.h"

#include <stdlib.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace fusecheck::testing {

std::string data_dir() {
  return FUSECHECK_TEST_DATA;
}

TempDir::TempDir() {
  const char* t = getenv("TMPDIR");
  std::string tmpl = std::string(t ? t : "/tmp") + "/fusecheck-test-XXXXXX";
  char* p = mkdtemp(tmpl.data());
  if (!p) throw std::runtime_error("mkdtemp failed");
  path_ = p;
}

TempDir::~TempDir() {
  std::error_code ec;
  // Restore permissions tests may have removed, so the tree can be deleted.
  for (auto it = std::filesystem::recursive_directory_iterator(path_, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
    std::filesystem::permissions(it->path(), std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
  std::filesystem::remove_all(path_, ec);
}

RunResult run_cli(const std::string& args, const std::string& env) {
  TempDir io;
  std::string cmd =
      env + " " + FUSECHECK_BINARY + " " + args + " >" + io.path() + "/out 2>" + io.path() + "/err";
  int status = std::system(cmd.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(io.path() + "/out");
  r.err = read_text(io.path() + "/err");
  return r;
}

void write_text(const std::string& path, const std::string& contents) {
  std::ofstream f(path, std::ios::binary);
  f << contents;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace fusecheck::testing
