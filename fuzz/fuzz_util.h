// Helpers shared by the libFuzzer targets: one scratch directory per process (on /dev/shm when it
// exists, so the per-input writes stay in memory), removed at exit.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace fusecheck::fuzz {

class ScratchDir {
 public:
  ScratchDir() {
    std::string base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
    if (const char* t = std::getenv("TMPDIR"); t && *t) base = t;
    std::string tmpl = base + "/fusecheck-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl.data())) std::abort();
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A process-wide scratch directory (each fuzzing process is one target).
inline ScratchDir& scratch() {
  static ScratchDir dir;
  return dir;
}

inline void write_bytes(const std::string& path, std::string_view bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) std::abort();
}

inline std::string_view as_view(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits an input at the first occurrence of `sep` (for targets that need two files).
inline std::pair<std::string_view, std::string_view> split(std::string_view in,
                                                           std::string_view sep) {
  size_t p = in.find(sep);
  if (p == std::string_view::npos) return {in, {}};
  return {in.substr(0, p), in.substr(p + sep.size())};
}

}  // namespace fusecheck::fuzz
