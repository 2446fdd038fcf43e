#include "util/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace fusecheck {

Status write_file_atomic(const std::string& path, std::string_view contents) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  std::string tmpl = dir + "/." + std::filesystem::path(path).filename().string() + ".tmp.XXXXXX";
  int fd = mkstemp(tmpl.data());
  if (fd < 0)
    return make_error("{}: cannot create a temporary file in {}: {}", path, dir, strerror(errno));
  const char* p = contents.data();
  size_t left = contents.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = errno;
      ::close(fd);
      ::unlink(tmpl.c_str());
      return make_error("{}: write failed: {}", path, strerror(e));
    }
    p += n;
    left -= size_t(n);
  }
  // mkstemp creates 0600; reports and cache entries are ordinary files, so honour the umask.
  mode_t mask = umask(0);
  umask(mask);
  fchmod(fd, 0666 & ~mask);
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int e = errno;
    ::unlink(tmpl.c_str());
    return make_error("{}: cannot flush to disk: {}", path, strerror(e));
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmpl.c_str());
    return make_error("{}: cannot rename the temporary file into place: {}", path, strerror(e));
  }
  return ok_status();
}

namespace {

// Opens `path` as a regular file of at most max_bytes; returns the descriptor and its size.
Result<std::pair<int, size_t>> open_small_file(const std::string& path, size_t max_bytes) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer; fstat rejects it.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return make_error("{}: cannot open: {}", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error("{}: not a regular file", path);
  }
  if (size_t(st.st_size) > max_bytes) {
    ::close(fd);
    return make_error("{}: {} bytes, more than the {} allowed for this kind of file", path,
                      st.st_size, max_bytes);
  }
  return std::pair<int, size_t>{fd, size_t(st.st_size)};
}

// Reads up to `want` bytes into `out` and closes fd; returns how many were read (a file that
// shrank while read is read as what is there).
size_t read_and_close(int fd, char* out, size_t want) {
  size_t got = 0;
  while (got < want) {
    ssize_t n = ::pread(fd, out + got, want - got, off_t(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += size_t(n);
  }
  ::close(fd);
  return got;
}

}  // namespace

Result<std::string> read_small_file(const std::string& path, size_t max_bytes) {
  FC_ASSIGN(opened, open_small_file(path, max_bytes));
  std::string out(opened.second, '\0');
  out.resize(read_and_close(opened.first, out.data(), opened.second));
  return out;
}

Result<PaddedBytes> read_small_file_padded(const std::string& path, size_t max_bytes,
                                           size_t padding) {
  FC_ASSIGN(opened, open_small_file(path, max_bytes));
  PaddedBytes out;
  out.data = std::make_unique_for_overwrite<char[]>(opened.second + padding);
  out.size = read_and_close(opened.first, out.data.get(), opened.second);
  std::memset(out.data.get() + out.size, 0, opened.second + padding - out.size);
  return out;
}

}  // namespace fusecheck
