// Pre-tokenizers (Split, ByteLevel, Metaspace, Sequence) with the split semantics of the HF
// `tokenizers` library, and GPT-2's byte <-> unicode table.
#include "tokenizer/components.h"

namespace fusecheck {

namespace {

using tok_json::json;

// GPT-2's pattern, which ByteLevel(use_regex = true) applies before mapping bytes.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

Result<PrependScheme> parse_prepend_scheme(const json& j, const std::string& file,
                                           const std::string& where) {
  if (const json* s = tok_json::find(j, "prepend_scheme")) {
    if (s->is_string()) {
      auto v = s->get<std::string>();
      if (v == "first") return PrependScheme::kFirst;
      if (v == "always") return PrependScheme::kAlways;
      if (v == "never") return PrependScheme::kNever;
    }
    return make_error(
        "{}: expected \"first\", \"always\" or \"never\" at {}.prepend_scheme, found {}", file,
        where, printable(s->dump()));
  }
  // Files written before prepend_scheme existed use add_prefix_space (default true).
  FC_ASSIGN(add, tok_json::get_bool_or(j, "add_prefix_space", true, file, where));
  return add ? PrependScheme::kAlways : PrependScheme::kNever;
}

Result<std::string> parse_single_char(const json& j, const char* key, const std::string& file,
                                      const std::string& where) {
  FC_ASSIGN(s, tok_json::get_string(j, key, file, where));
  size_t i = 0;
  if (s.empty() || !utf8::is_valid(s) || (utf8::next_code_point(s, i), i != s.size()))
    return make_error("{}: expected one character at {}.{}, found \"{}\"", file, where, key,
                      printable(s));
  return s;
}

Status parse_step(const json& j, const std::string& file, const std::string& where, int depth,
                  PreTokenizer& out) {
  if (depth > 8)
    return make_error("{}: expected at most 8 nested Sequence pre-tokenizers at {}", file, where);
  FC_ASSIGN(type, tok_json::get_string(j, "type", file, where));
  PreTokenizerStep step{};
  if (type == "Sequence") {
    const json* list = tok_json::find(j, "pretokenizers");
    if (!list || !list->is_array())
      return make_error("{}: expected an array at {}.pretokenizers, found {}", file, where,
                        list ? list->type_name() : "nothing");
    for (size_t i = 0; i < list->size(); ++i)
      FC_TRY(parse_step((*list)[i], file, fmt::format("{}.pretokenizers[{}]", where, i), depth + 1,
                        out));
    return ok_status();
  }
  if (type == "Split") {
    step.kind = PreTokenizerStep::kSplit;
    const json* pat = tok_json::find(j, "pattern");
    if (pat && tok_json::find(*pat, "Regex")) {
      FC_ASSIGN(re, tok_json::get_string(*pat, "Regex", file, where + ".pattern"));
      FC_ASSIGN(compiled, Regex::compile(re, file, where + ".pattern.Regex"));
      step.regex = std::move(compiled);
    } else if (pat && tok_json::find(*pat, "String")) {
      FC_ASSIGN(lit, tok_json::get_string(*pat, "String", file, where + ".pattern"));
      if (lit.empty()) return make_error("{}: expected a non-empty {}.pattern.String", file, where);
      step.literal = utf8::sanitize(lit);
    } else {
      return make_error("{}: expected {}.pattern to be {{\"Regex\": ...}} or {{\"String\": ...}}",
                        file, where);
    }
    FC_ASSIGN(b, tok_json::get_string(j, "behavior", file, where));
    if (b == "Removed")
      step.behavior = SplitBehavior::kRemoved;
    else if (b == "Isolated")
      step.behavior = SplitBehavior::kIsolated;
    else if (b == "MergedWithPrevious")
      step.behavior = SplitBehavior::kMergedWithPrevious;
    else if (b == "MergedWithNext")
      step.behavior = SplitBehavior::kMergedWithNext;
    else if (b == "Contiguous")
      step.behavior = SplitBehavior::kContiguous;
    else
      return make_error(
          "{}: expected a split behavior (Removed, Isolated, MergedWithPrevious, "
          "MergedWithNext, Contiguous) at {}.behavior, found \"{}\"",
          file, where, printable(b));
    FC_ASSIGN(inv, tok_json::get_bool_or(j, "invert", false, file, where));
    step.invert = inv;
  } else if (type == "ByteLevel") {
    step.kind = PreTokenizerStep::kByteLevel;
    FC_ASSIGN(aps, tok_json::get_bool_or(j, "add_prefix_space", true, file, where));
    FC_ASSIGN(ur, tok_json::get_bool_or(j, "use_regex", true, file, where));
    step.add_prefix_space = aps;
    step.use_regex = ur;
    if (ur) {
      FC_ASSIGN(compiled, Regex::compile(kGpt2Pattern, file, where));
      step.regex = std::move(compiled);
    }
  } else if (type == "Metaspace") {
    step.kind = PreTokenizerStep::kMetaspace;
    FC_ASSIGN(rep, parse_single_char(j, "replacement", file, where));
    FC_ASSIGN(scheme, parse_prepend_scheme(j, file, where));
    FC_ASSIGN(split, tok_json::get_bool_or(j, "split", true, file, where));
    step.replacement = rep;
    step.prepend_scheme = scheme;
    step.split = split;
  } else {
    return make_error(
        "{}: expected a pre-tokenizer fusecheck implements (Split, ByteLevel, Metaspace, "
        "Sequence) at {}, found type \"{}\"",
        file, where, printable(type));
  }
  out.push_back(std::move(step));
  return ok_status();
}

struct Span {
  size_t b, e;
  bool match;
};

// Applies a split behavior to the (match / non-match) spans covering a piece, as `tokenizers`'
// NormalizedString::split does; returns the spans to keep (their flag is then meaningless).
std::vector<Span> apply_behavior(std::vector<Span> spans, SplitBehavior behavior) {
  std::vector<Span> out;
  bool prev_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      return spans;
    case SplitBehavior::kRemoved:
      for (const auto& s : spans)
        if (!s.match) out.push_back(s);
      return out;
    case SplitBehavior::kMergedWithPrevious:
      for (const auto& s : spans) {
        if (s.match && !prev_match && !out.empty())
          out.back().e = s.e;
        else
          out.push_back(s);
        prev_match = s.match;
      }
      return out;
    case SplitBehavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->match && !prev_match && !out.empty())
          out.back().b = it->b;
        else
          out.push_back(*it);
        prev_match = it->match;
      }
      return {out.rbegin(), out.rend()};
    case SplitBehavior::kContiguous:
      for (const auto& s : spans) {
        if (s.match == prev_match && !out.empty())
          out.back().e = s.e;
        else
          out.push_back(s);
        prev_match = s.match;
      }
      return out;
  }
  return spans;
}

// Splits `p` by a regex or a literal and appends the kept, non-empty pieces to `out`.
void split_piece(const Piece& p, const Regex* re, const std::string& literal,
                 SplitBehavior behavior, bool invert, std::vector<Piece>& out) {
  std::vector<std::pair<size_t, size_t>> hits;
  if (re) {
    re->find_all(p.text, hits);
  } else {
    for (size_t pos = 0; (pos = p.text.find(literal, pos)) != std::string::npos;
         pos += literal.size())
      hits.emplace_back(pos, pos + literal.size());
  }
  std::vector<Span> spans;
  size_t prev = 0;
  for (auto [b, e] : hits) {
    if (b > prev) spans.push_back({prev, b, invert});
    spans.push_back({b, e, !invert});
    prev = e;
  }
  if (prev < p.text.size()) spans.push_back({prev, p.text.size(), invert});
  for (const auto& s : apply_behavior(std::move(spans), behavior))
    if (s.e > s.b) out.push_back({p.text.substr(s.b, s.e - s.b), p.at_start && s.b == 0});
}

void replace_spaces(std::string& s, const std::string& with) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == ' ')
      out += with;
    else
      out += c;
  }
  s = std::move(out);
}

void apply_step(const PreTokenizerStep& st, Piece p, std::vector<Piece>& out) {
  switch (st.kind) {
    case PreTokenizerStep::kSplit:
      split_piece(p, st.regex.get(), st.literal, st.behavior, st.invert, out);
      return;
    case PreTokenizerStep::kByteLevel: {
      if (st.add_prefix_space && (p.text.empty() || p.text[0] != ' ')) p.text = " " + p.text;
      std::vector<Piece> words;
      if (st.use_regex)
        split_piece(p, st.regex.get(), {}, SplitBehavior::kIsolated, false, words);
      else
        words.push_back(std::move(p));
      const auto& table = byte_level_table();
      for (auto& w : words) {
        std::string mapped;
        mapped.reserve(w.text.size() * 2);
        for (char c : w.text) mapped += table.byte_to_utf8[static_cast<unsigned char>(c)];
        out.push_back({std::move(mapped), w.at_start});
      }
      return;
    }
    case PreTokenizerStep::kMetaspace: {
      replace_spaces(p.text, st.replacement);
      bool starts = p.text.compare(0, st.replacement.size(), st.replacement) == 0;
      if (!starts && (st.prepend_scheme == PrependScheme::kAlways ||
                      (st.prepend_scheme == PrependScheme::kFirst && p.at_start)))
        p.text = st.replacement + p.text;
      if (st.split)
        split_piece(p, nullptr, st.replacement, SplitBehavior::kMergedWithNext, false, out);
      else if (!p.text.empty())
        out.push_back(std::move(p));
      return;
    }
  }
}

}  // namespace

ByteLevelTable::ByteLevelTable() {
  cp_to_byte.fill(-1);
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    char32_t cp = printable ? char32_t(b) : char32_t(256 + n++);
    byte_to_utf8[b].clear();
    utf8::append(byte_to_utf8[b], cp);
    cp_to_byte[cp] = int16_t(b);
  }
}

const ByteLevelTable& byte_level_table() {
  static const ByteLevelTable table;  // immutable after construction (thread-safe static init)
  return table;
}

Result<PreTokenizer> parse_pre_tokenizer(const json& j, const std::string& file) {
  PreTokenizer p;
  if (j.is_null()) return p;
  FC_TRY(parse_step(j, file, "pre_tokenizer", 0, p));
  return p;
}

void pre_tokenize(const PreTokenizer& p, Piece piece, std::vector<Piece>& out) {
  std::vector<Piece> cur, next;
  if (piece.text.empty()) return;
  cur.push_back(std::move(piece));
  for (const auto& step : p) {
    next.clear();
    for (auto& c : cur) apply_step(step, std::move(c), next);
    std::swap(cur, next);
  }
  for (auto& c : cur)
    if (!c.text.empty()) out.push_back(std::move(c));
}

}  // namespace fusecheck
