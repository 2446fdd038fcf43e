// Normalizers (NFC/NFD/NFKC/NFKD through utf8proc, Prepend, Replace) and their parsing.
#include <utf8proc.h>

#include <cstdlib>

#include "tokenizer/components.h"

namespace fusecheck {

namespace {

using tok_json::json;

Status parse_step(const json& j, const std::string& file, const std::string& where, int depth,
                  Normalizer& out) {
  if (depth > 8)
    return make_error("{}: expected at most 8 nested Sequence normalizers at {}", file, where);
  FC_ASSIGN(type, tok_json::get_string(j, "type", file, where));
  if (type == "Sequence") {
    const json* list = tok_json::find(j, "normalizers");
    if (!list || !list->is_array())
      return make_error("{}: expected an array at {}.normalizers, found {}", file, where,
                        list ? list->type_name() : "nothing");
    for (size_t i = 0; i < list->size(); ++i)
      FC_TRY(parse_step((*list)[i], file, fmt::format("{}.normalizers[{}]", where, i), depth + 1,
                        out));
    return ok_status();
  }
  if (type == "NFC") return out.push_back({NormalizerStep::kNFC, {}, {}}), ok_status();
  if (type == "NFD") return out.push_back({NormalizerStep::kNFD, {}, {}}), ok_status();
  if (type == "NFKC") return out.push_back({NormalizerStep::kNFKC, {}, {}}), ok_status();
  if (type == "NFKD") return out.push_back({NormalizerStep::kNFKD, {}, {}}), ok_status();
  if (type == "Prepend") {
    FC_ASSIGN(p, tok_json::get_string(j, "prepend", file, where));
    out.push_back({NormalizerStep::kPrepend, utf8::sanitize(p), {}});
    return ok_status();
  }
  if (type == "Replace") {
    const json* pat = tok_json::find(j, "pattern");
    if (!pat || !tok_json::find(*pat, "String"))
      return make_error(
          "{}: expected {}.pattern to be {{\"String\": ...}}, found {}; hint: Regex patterns in "
          "a Replace normalizer are not supported",
          file, where, pat ? pat->dump().substr(0, 60) : "nothing");
    FC_ASSIGN(from, tok_json::get_string(*pat, "String", file, where + ".pattern"));
    FC_ASSIGN(to, tok_json::get_string(j, "content", file, where));
    if (from.empty()) return make_error("{}: expected a non-empty {}.pattern", file, where);
    out.push_back({NormalizerStep::kReplace, utf8::sanitize(from), utf8::sanitize(to)});
    return ok_status();
  }
  return make_error(
      "{}: expected a normalizer fusecheck implements (NFC, NFD, NFKC, NFKD, Prepend, Replace, "
      "Sequence) at {}, found type \"{}\"",
      file, where, printable(type));
}

bool all_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

std::string unicode_normalize(std::string_view s, utf8proc_option_t opts) {
  if (all_ascii(s)) return std::string(s);  // ASCII is invariant under every normalization form
  utf8proc_uint8_t* dst = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                    utf8proc_ssize_t(s.size()), &dst, opts);
  if (n < 0) return std::string(s);  // only on invalid UTF-8, which the caller never passes
  std::string out(reinterpret_cast<char*>(dst), size_t(n));
  std::free(dst);
  return out;
}

}  // namespace

Result<Normalizer> parse_normalizer(const json& j, const std::string& file) {
  Normalizer n;
  if (j.is_null()) return n;
  FC_TRY(parse_step(j, file, "normalizer", 0, n));
  return n;
}

std::string normalize(const Normalizer& n, std::string_view text) {
  std::string s(text);
  for (const auto& step : n) {
    switch (step.kind) {
      case NormalizerStep::kNFC:
        s = unicode_normalize(s, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
        break;
      case NormalizerStep::kNFD:
        s = unicode_normalize(s, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE));
        break;
      case NormalizerStep::kNFKC:
        s = unicode_normalize(
            s, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
        break;
      case NormalizerStep::kNFKD:
        s = unicode_normalize(
            s, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
        break;
      case NormalizerStep::kPrepend:
        if (!s.empty()) s = step.a + s;  // `tokenizers` prepends only to non-empty text
        break;
      case NormalizerStep::kReplace:
        replace_all(s, step.a, step.b);
        break;
    }
  }
  return s;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (s.find(from) == std::string::npos) return;
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size())
    out.append(s, pos, hit - pos).append(to);
  out.append(s, pos);
  s = std::move(out);
}

}  // namespace fusecheck
