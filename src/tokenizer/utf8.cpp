// UTF-8 validation and repair for the tokenizer; see utf8.h.
#include "tokenizer/utf8.h"

namespace fusecheck::utf8 {

namespace {

// The allowed range of the second byte for a lead byte (Unicode Table 3-7), which rules out
// overlong forms, surrogates and values above U+10FFFF at the first continuation byte.
bool second_byte_ok(unsigned char lead, unsigned char b) {
  if (lead == 0xE0) return b >= 0xA0 && b <= 0xBF;
  if (lead == 0xED) return b >= 0x80 && b <= 0x9F;
  if (lead == 0xF0) return b >= 0x90 && b <= 0xBF;
  if (lead == 0xF4) return b >= 0x80 && b <= 0x8F;
  return b >= 0x80 && b <= 0xBF;
}

size_t expected_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;  // continuation byte, C0/C1 or F5..FF: never a lead
}

// Number of bytes from s[i] that form a valid prefix of a sequence (at least 1 when the lead is
// valid); `complete` tells whether the whole sequence is there.
size_t valid_prefix(std::string_view s, size_t i, bool& complete) {
  complete = false;
  auto lead = static_cast<unsigned char>(s[i]);
  size_t need = expected_length(lead);
  if (need == 0) return 0;
  if (need == 1) {
    complete = true;
    return 1;
  }
  size_t k = 1;
  for (; k < need && i + k < s.size(); ++k) {
    auto b = static_cast<unsigned char>(s[i + k]);
    bool ok = (k == 1) ? second_byte_ok(lead, b) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return k;
  }
  complete = (k == need);
  return k;
}

}  // namespace

size_t valid_sequence_length(std::string_view s, size_t i) {
  bool complete = false;
  size_t k = valid_prefix(s, i, complete);
  return complete ? k : 0;
}

bool is_valid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t k = valid_sequence_length(s, i);
    if (k == 0) return false;
    i += k;
  }
  return true;
}

std::string sanitize(std::string_view s) {
  if (is_valid(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    bool complete = false;
    size_t k = valid_prefix(s, i, complete);
    if (complete) {
      out.append(s.substr(i, k));
      i += k;
    } else {
      out.append(kReplacement);  // one U+FFFD per maximal invalid subpart
      i += (k == 0 ? 1 : k);
    }
  }
  return out;
}

size_t incomplete_tail(std::string_view s) {
  // A sequence is at most 4 bytes, so only the last 3 lead positions can start an incomplete one.
  size_t from = s.size() > 3 ? s.size() - 3 : 0;
  for (size_t i = from; i < s.size(); ++i) {
    bool complete = false;
    size_t k = valid_prefix(s, i, complete);
    if (k > 0 && !complete && i + k == s.size()) return i;
  }
  return s.size();
}

char32_t next_code_point(std::string_view s, size_t& i) {
  auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  size_t n = expected_length(b0);
  if (n == 0 || i + n > s.size()) {  // only on invalid input, which callers never pass
    ++i;
    return 0xFFFD;
  }
  char32_t cp = b0 & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += n;
  return cp;
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

}  // namespace fusecheck::utf8
