// A file written in stages beside its final name and renamed into place only on commit, so a set
// of files (a whole checkpoint) can be prepared, flushed and then published together: a reader
// sees each file either old or new, never a part, and a failure before commit leaves no trace.
// This is util/atomic_file.h's write_file_atomic for contents too large to hold in memory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/result.h"

namespace fusecheck {

class StagedFile {
 public:
  // Creates the temporary file in the directory of `path`.
  static Result<StagedFile> create(const std::string& path);

  StagedFile(StagedFile&& o) noexcept;
  StagedFile& operator=(StagedFile&& o) noexcept;
  StagedFile(const StagedFile&) = delete;
  StagedFile& operator=(const StagedFile&) = delete;
  ~StagedFile();  // discards the temporary unless committed

  const std::string& path() const { return path_; }
  // Appends bytes at the end of what was written so far.
  Status append(std::string_view bytes);
  // Appends the whole contents of `src`, byte for byte (symlinks followed).
  Status append_file(const std::string& src);
  // Overwrites bytes at `offset`, which must lie within what was written.
  Status write_at(uint64_t offset, std::string_view bytes);
  // fsync and close; the temporary is complete but not yet visible under `path`.
  Status finish();
  // Renames the finished temporary to `path`.
  Status commit();
  // Removes the temporary (idempotent).
  void discard();

 private:
  StagedFile() = default;
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t size_ = 0;
  bool finished_ = false;
};

}  // namespace fusecheck
