// Decoders (ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence): token strings back
// to text, following the HF `tokenizers` decode chain step by step.
#include "tokenizer/components.h"

namespace fusecheck {

namespace {

using tok_json::json;

Result<PrependScheme> decoder_prepend_scheme(const json& j, const std::string& file,
                                             const std::string& where) {
  if (const json* s = tok_json::find(j, "prepend_scheme")) {
    std::string v = s->is_string() ? s->get<std::string>() : std::string();
    if (v == "first") return PrependScheme::kFirst;
    if (v == "always") return PrependScheme::kAlways;
    if (v == "never") return PrependScheme::kNever;
    return make_error("{}: expected \"first\", \"always\" or \"never\" at {}.prepend_scheme", file,
                      where);
  }
  FC_ASSIGN(add, tok_json::get_bool_or(j, "add_prefix_space", true, file, where));
  return add ? PrependScheme::kAlways : PrependScheme::kNever;
}

Result<int> small_int(const json& j, const char* key, const std::string& file,
                      const std::string& where) {
  const json* v = tok_json::find(j, key);
  if (!v) return 0;
  if (!v->is_number_integer() || v->get<int64_t>() < 0 || v->get<int64_t>() > 1000)
    return make_error("{}: expected an integer 0..1000 at {}.{}, found {}", file, where, key,
                      printable(v->dump()));
  return int(v->get<int64_t>());
}

Status parse_step(const json& j, const std::string& file, const std::string& where, int depth,
                  std::vector<DecoderStep>& out) {
  if (depth > 8)
    return make_error("{}: expected at most 8 nested Sequence decoders at {}", file, where);
  FC_ASSIGN(type, tok_json::get_string(j, "type", file, where));
  DecoderStep st{};
  if (type == "Sequence") {
    const json* list = tok_json::find(j, "decoders");
    if (!list || !list->is_array())
      return make_error("{}: expected an array at {}.decoders, found {}", file, where,
                        list ? list->type_name() : "nothing");
    for (size_t i = 0; i < list->size(); ++i)
      FC_TRY(
          parse_step((*list)[i], file, fmt::format("{}.decoders[{}]", where, i), depth + 1, out));
    return ok_status();
  }
  if (type == "ByteLevel") {
    st.kind = DecoderStep::kByteLevel;
  } else if (type == "ByteFallback") {
    st.kind = DecoderStep::kByteFallback;
  } else if (type == "Fuse") {
    st.kind = DecoderStep::kFuse;
  } else if (type == "Replace") {
    st.kind = DecoderStep::kReplace;
    const json* pat = tok_json::find(j, "pattern");
    if (!pat || !tok_json::find(*pat, "String"))
      return make_error(
          "{}: expected {}.pattern to be {{\"String\": ...}}; hint: Regex patterns "
          "in a Replace decoder are not supported",
          file, where);
    FC_ASSIGN(from, tok_json::get_string(*pat, "String", file, where + ".pattern"));
    FC_ASSIGN(to, tok_json::get_string(j, "content", file, where));
    if (from.empty()) return make_error("{}: expected a non-empty {}.pattern", file, where);
    st.a = utf8::sanitize(from);
    st.b = utf8::sanitize(to);
  } else if (type == "Strip") {
    st.kind = DecoderStep::kStrip;
    FC_ASSIGN(content, tok_json::get_string(j, "content", file, where));
    FC_ASSIGN(start, small_int(j, "start", file, where));
    FC_ASSIGN(stop, small_int(j, "stop", file, where));
    st.a = utf8::sanitize(content);
    st.start = start;
    st.stop = stop;
    if (st.a.empty()) return make_error("{}: expected a non-empty {}.content", file, where);
  } else if (type == "Metaspace") {
    st.kind = DecoderStep::kMetaspace;
    FC_ASSIGN(rep, tok_json::get_string(j, "replacement", file, where));
    FC_ASSIGN(scheme, decoder_prepend_scheme(j, file, where));
    if (rep.empty()) return make_error("{}: expected a non-empty {}.replacement", file, where);
    st.a = utf8::sanitize(rep);
    st.prepend_scheme = scheme;
  } else {
    return make_error(
        "{}: expected a decoder fusecheck implements (ByteLevel, ByteFallback, Fuse, Replace, "
        "Strip, Metaspace, Sequence) at {}, found type \"{}\"",
        file, where, printable(type));
  }
  out.push_back(std::move(st));
  return ok_status();
}

// "<0xNN>" -> the byte, as ByteFallback reads it.
int fallback_byte(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  int hi = hex(t[3]), lo = hex(t[4]);
  return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

std::vector<std::string> byte_fallback(std::vector<std::string> tokens, bool raw) {
  std::vector<std::string> out;
  std::string bytes;
  size_t count = 0;
  auto flush = [&] {
    if (count == 0) return;
    if (raw || utf8::is_valid(bytes)) {
      out.push_back(bytes);
    } else {
      for (size_t i = 0; i < count; ++i) out.emplace_back(utf8::kReplacement);
    }
    bytes.clear();
    count = 0;
  };
  for (auto& t : tokens) {
    int b = fallback_byte(t);
    if (b >= 0) {
      bytes += char(b);
      ++count;
    } else {
      flush();
      out.push_back(std::move(t));
    }
  }
  flush();
  return out;
}

// Strips up to `start` leading and `stop` trailing copies of `content` (a character).
void strip(std::string& t, const std::string& content, int start, int stop) {
  size_t b = 0;
  for (int i = 0; i < start && t.compare(b, content.size(), content) == 0; ++i) b += content.size();
  size_t e = t.size();
  for (int i = 0; i < stop && e >= b + content.size() &&
                  t.compare(e - content.size(), content.size(), content) == 0;
       ++i)
    e -= content.size();
  t = t.substr(b, e - b);
}

}  // namespace

Result<Decoder> parse_decoder(const json& j, const std::string& file) {
  Decoder d;
  if (j.is_null()) return d;
  d.present = true;
  FC_TRY(parse_step(j, file, "decoder", 0, d.steps));
  return d;
}

std::string decode_tokens(const Decoder& d, std::vector<std::string> tokens, bool raw) {
  if (!d.present) {
    std::string joined;
    for (size_t i = 0; i < tokens.size(); ++i) joined += (i ? " " : "") + tokens[i];
    return joined;
  }
  const auto& table = byte_level_table();
  for (const auto& st : d.steps) {
    switch (st.kind) {
      case DecoderStep::kByteLevel: {
        // Each token maps back byte by byte; a token holding a character outside the table (an
        // added token such as "<|im_start|>\n") keeps its own UTF-8 bytes, as in `tokenizers`.
        std::string bytes;
        for (const auto& t : tokens) {
          std::string mapped;
          bool ok = true;
          for (size_t i = 0; i < t.size() && ok;) {
            char32_t cp = utf8::next_code_point(t, i);
            int b = cp < 512 ? table.cp_to_byte[cp] : -1;
            if (b < 0)
              ok = false;
            else
              mapped += char(b);
          }
          bytes += ok ? mapped : t;
        }
        tokens.assign(1, raw ? std::move(bytes) : utf8::sanitize(bytes));
        break;
      }
      case DecoderStep::kReplace:
        for (auto& t : tokens) replace_all(t, st.a, st.b);
        break;
      case DecoderStep::kByteFallback:
        tokens = byte_fallback(std::move(tokens), raw);
        break;
      case DecoderStep::kFuse: {
        std::string all;
        for (const auto& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case DecoderStep::kStrip:
        for (auto& t : tokens) strip(t, st.a, st.start, st.stop);
        break;
      case DecoderStep::kMetaspace:
        for (size_t i = 0; i < tokens.size(); ++i) {
          // As `tokenizers`: in the first token every replacement character is dropped (unless the
          // scheme is "never"); elsewhere it becomes a space.
          bool drop = (i == 0 && st.prepend_scheme != PrependScheme::kNever);
          replace_all(tokens[i], st.a, drop ? "" : " ");
        }
        break;
    }
  }
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

}  // namespace fusecheck
