// Writes a whole file so that readers see either the old contents or the new, never a part:
// temp file in the same directory, fsync, rename. Used for reports and cache entries.
#pragma once

#include <string>
#include <string_view>

#include "util/result.h"

namespace fusecheck {

Status write_file_atomic(const std::string& path, std::string_view contents);

// Reads a whole (small) file; fails past max_bytes so hostile inputs cannot force huge allocations.
Result<std::string> read_small_file(const std::string& path, size_t max_bytes, size_t padding = 0);

}  // namespace fusecheck
