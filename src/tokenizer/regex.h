// A compiled PCRE2 pattern (UTF + UCP, JIT when available) that finds matches the way the HF
// `tokenizers` library's Oniguruma regexes do: successive non-overlapping leftmost matches, with
// lookarounds seeing the whole subject. Immutable after compile, so one can be shared by threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/result.h"

namespace fusecheck {

class Regex {
 public:
  // `file` and `where` only name the pattern's origin in the error message.
  static Result<std::shared_ptr<const Regex>> compile(const std::string& pattern,
                                                      const std::string& file,
                                                      const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [start, end) byte ranges of the non-empty matches in `subject` (valid UTF-8).
  void find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  Regex() = default;
  void* code_ = nullptr;  // pcre2_code_8*, kept opaque so pcre2.h stays out of the header
};

}  // namespace fusecheck
