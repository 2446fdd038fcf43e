// PCRE2 wrapper; see regex.h.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "tokenizer/utf8.h"

namespace fusecheck {

namespace {
pcre2_code* code(void* p) {
  return static_cast<pcre2_code*>(p);
}
}  // namespace

Result<std::shared_ptr<const Regex>> Regex::compile(const std::string& pattern,
                                                    const std::string& file,
                                                    const std::string& where) {
  int err = 0;
  PCRE2_SIZE off = 0;
  // UCP makes \s, \w, \d and POSIX classes Unicode-aware, as Oniguruma's are in `tokenizers`.
  pcre2_code* c = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
  if (!c) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof buf);
    return make_error("{}: expected a regex PCRE2 accepts at {}, found an error at offset {}: {}",
                      file, where, off, reinterpret_cast<const char*>(buf));
  }
  // JIT is an optimisation only: if it is unavailable the interpreter gives the same matches.
  pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);
  std::shared_ptr<Regex> r(new Regex());
  r->code_ = c;
  return std::shared_ptr<const Regex>(std::move(r));
}

Regex::~Regex() {
  pcre2_code_free(code(code_));
}

void Regex::find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>& out) const {
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code(code_), nullptr);
  if (!md) return;
  const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t start = 0;
  while (start < subject.size()) {
    // The subject was validated once by the caller, so PCRE2 need not re-check it at every call.
    int rc = pcre2_match(code(code_), s, subject.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
      // JIT stack exhausted on a pathological input: retry with the (heap-based) interpreter.
      rc = pcre2_match(code(code_), s, subject.size(), start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md,
                       nullptr);
    }
    if (rc < 0) break;  // no match, or a resource limit: the rest stays one unmatched piece
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t b = ov[0], e = ov[1];
    if (e <= b) {
      // Empty match: Oniguruma's find_iter moves one character on; empty pieces are dropped.
      size_t k = utf8::valid_sequence_length(subject, b);
      start = b + (k == 0 ? 1 : k);
      continue;
    }
    out.emplace_back(b, e);
    start = e;
  }
  pcre2_match_data_free(md);
}

}  // namespace fusecheck
