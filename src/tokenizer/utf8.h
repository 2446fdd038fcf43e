// UTF-8 helpers for the tokenizer: lossy validation (invalid bytes become U+FFFD, as Rust's
// String::from_utf8_lossy and Python's errors="replace" do), code point iteration, and finding
// where an incomplete trailing sequence starts (for the streaming decoder).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace fusecheck::utf8 {

inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 sequence starting at s[i], or 0 if the bytes there are not one
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
size_t valid_sequence_length(std::string_view s, size_t i);

// `s` with every maximal invalid subpart replaced by U+FFFD (the WHATWG / Unicode "best practice"
// policy, which Rust's from_utf8_lossy follows). Returns s unchanged when it is valid.
std::string sanitize(std::string_view s);
bool is_valid(std::string_view s);

// Where a trailing sequence starts that is incomplete but could still become valid with more
// bytes; s.size() when the end of s is complete.
size_t incomplete_tail(std::string_view s);

// Decodes the (valid) sequence at s[i], advancing i. Precondition: s is valid UTF-8.
char32_t next_code_point(std::string_view s, size_t& i);
void append(std::string& out, char32_t cp);

}  // namespace fusecheck::utf8
