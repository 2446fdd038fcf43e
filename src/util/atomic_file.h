// Writes a whole file so that readers see either the old contents or the new, never a part:
// temp file in the same directory, fsync, rename. Used for reports and cache entries.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "util/result.h"

namespace fusecheck {

Status write_file_atomic(const std::string& path, std::string_view contents);

// Reads a whole (small) file; fails past max_bytes so hostile inputs cannot force huge allocations.
Result<std::string> read_small_file(const std::string& path, size_t max_bytes);

// A file's bytes with `padding` zero bytes allocated after them, for a parser that reads ahead
// (simdjson) to parse them in place. Only the padding is zero-filled: the bytes are read straight
// into the buffer (a 235B index is 3 MB, whose zero-fill was a cost of its own).
struct PaddedBytes {
  std::unique_ptr<char[]> data;  // [size + padding]
  size_t size = 0;
  std::string_view view() const { return {data.get(), size}; }
};
Result<PaddedBytes> read_small_file_padded(const std::string& path, size_t max_bytes,
                                           size_t padding);

}  // namespace fusecheck
