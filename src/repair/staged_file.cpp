#include "repair/staged_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

namespace fusecheck {

namespace {

bool write_all(int fd, const char* p, size_t n, uint64_t off) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, off_t(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= size_t(w);
    off += uint64_t(w);
  }
  return true;
}

}  // namespace

Result<StagedFile> StagedFile::create(const std::string& path) {
  namespace fs = std::filesystem;
  std::string dir = fs::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  StagedFile f;
  f.path_ = path;
  f.tmp_ = dir + "/." + fs::path(path).filename().string() + ".tmp.XXXXXX";
  f.fd_ = mkstemp(f.tmp_.data());
  if (f.fd_ < 0)
    return make_error("{}: cannot create a temporary file in {}: {}", path, dir, strerror(errno));
  // mkstemp creates 0600; checkpoint files are ordinary files, so honour the umask.
  mode_t mask = umask(0);
  umask(mask);
  fchmod(f.fd_, 0666 & ~mask);
  return f;
}

StagedFile::StagedFile(StagedFile&& o) noexcept {
  *this = std::move(o);
}

StagedFile& StagedFile::operator=(StagedFile&& o) noexcept {
  if (this != &o) {
    discard();
    path_ = std::move(o.path_);
    tmp_ = std::move(o.tmp_);
    fd_ = o.fd_;
    size_ = o.size_;
    finished_ = o.finished_;
    o.fd_ = -1;
    o.tmp_.clear();
  }
  return *this;
}

StagedFile::~StagedFile() {
  discard();
}

Status StagedFile::append(std::string_view bytes) {
  if (fd_ < 0) return make_error("{}: write after close", path_);
  if (!write_all(fd_, bytes.data(), bytes.size(), size_))
    return make_error("{}: write failed: {}", path_, strerror(errno));
  size_ += bytes.size();
  return ok_status();
}

Status StagedFile::append_file(const std::string& src) {
  int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return make_error("{}: cannot open: {}", src, strerror(errno));
  struct stat st;
  if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(in);
    return make_error("{}: not a regular file", src);
  }
  std::vector<char> buf(4u << 20);
  uint64_t copied = 0;
  Status status = ok_status();
  for (;;) {
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = make_error("{}: read failed: {}", src, strerror(errno));
      break;
    }
    if (n == 0) break;
    if (auto st2 = append({buf.data(), size_t(n)}); !st2) {
      status = st2;
      break;
    }
    copied += uint64_t(n);
  }
  ::close(in);
  if (status.ok() && copied != uint64_t(st.st_size))
    return make_error("{}: changed size while being copied ({} bytes, then {})", src, st.st_size,
                      copied);
  return status;
}

Status StagedFile::write_at(uint64_t offset, std::string_view bytes) {
  if (fd_ < 0) return make_error("{}: write after close", path_);
  if (offset + bytes.size() > size_)
    return make_error("{}: internal error: overwrite past the end ({} + {} > {})", path_, offset,
                      bytes.size(), size_);
  if (!write_all(fd_, bytes.data(), bytes.size(), offset))
    return make_error("{}: write failed: {}", path_, strerror(errno));
  return ok_status();
}

Status StagedFile::finish() {
  if (fd_ < 0) return make_error("{}: finished twice", path_);
  int fd = fd_;
  fd_ = -1;
  if (::fsync(fd) != 0 || ::close(fd) != 0)
    return make_error("{}: cannot flush to disk: {}", path_, strerror(errno));
  finished_ = true;
  return ok_status();
}

Status StagedFile::commit() {
  if (!finished_) return make_error("{}: internal error: commit before finish", path_);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    return make_error("{}: cannot rename the temporary file into place: {}", path_,
                      strerror(errno));
  tmp_.clear();
  return ok_status();
}

void StagedFile::discard() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
  tmp_.clear();
}

}  // namespace fusecheck
