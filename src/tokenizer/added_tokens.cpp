// Added-token matching; see added_tokens.h.
#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace fusecheck {

using tok_json::json;

namespace {

// `tokenizers` checks word boundaries with char::is_alphanumeric or '_'; for ASCII that is
// [A-Za-z0-9_], and any non-ASCII character is treated as a word character here (conservative:
// single_word then does not match next to it).
bool is_word_byte(unsigned char c) {
  return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         c == '_';
}

bool is_space_byte(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

}  // namespace

Result<AddedTokens> AddedTokens::parse(const json& list, const std::string& file, int32_t max_id) {
  AddedTokens a;
  if (list.is_null()) return a;
  if (!list.is_array())
    return make_error("{}: expected an array at added_tokens, found {}", file, list.type_name());
  for (size_t i = 0; i < list.size(); ++i) {
    const json& e = list[i];
    std::string where = fmt::format("added_tokens[{}]", i);
    const json* id = tok_json::find(e, "id");
    if (!id || !id->is_number_integer() || id->get<int64_t>() < 0 || id->get<int64_t>() >= max_id)
      return make_error("{}: expected an id 0..{} at {}.id, found {}", file, max_id - 1, where,
                        id ? printable(id->dump()) : "nothing");
    AddedToken t;
    t.id = int32_t(id->get<int64_t>());
    FC_ASSIGN(content, tok_json::get_string(e, "content", file, where));
    if (content.empty() || !utf8::is_valid(content))
      return make_error("{}: expected non-empty UTF-8 text at {}.content", file, where);
    t.content = content;
    FC_ASSIGN(special, tok_json::get_bool_or(e, "special", false, file, where));
    FC_ASSIGN(sw, tok_json::get_bool_or(e, "single_word", false, file, where));
    FC_ASSIGN(ls, tok_json::get_bool_or(e, "lstrip", false, file, where));
    FC_ASSIGN(rs, tok_json::get_bool_or(e, "rstrip", false, file, where));
    // `tokenizers` defaults normalized to true for non-special tokens.
    FC_ASSIGN(norm, tok_json::get_bool_or(e, "normalized", !special, file, where));
    t.special = special;
    t.single_word = sw;
    t.lstrip = ls;
    t.rstrip = rs;
    t.normalized = norm;
    if (a.by_id_.count(t.id) || a.by_content_.count(t.content))
      return make_error(
          "{}: expected unique ids and contents in added_tokens, found {} (\"{}\") "
          "twice",
          file, t.id, printable(t.content));
    a.by_id_[t.id] = a.tokens_.size();
    a.by_content_[t.content] = a.tokens_.size();
    a.max_id_ = std::max(a.max_id_, t.id);
    a.has_normalized_ = a.has_normalized_ || t.normalized;
    a.tokens_.push_back(std::move(t));
  }
  for (size_t i = 0; i < a.tokens_.size(); ++i) {
    const auto& t = a.tokens_[i];
    a.first_byte_[t.normalized][static_cast<unsigned char>(t.content[0])].push_back(i);
  }
  for (auto& per_flag : a.first_byte_)
    for (auto& v : per_flag)
      std::stable_sort(v.begin(), v.end(), [&](size_t x, size_t y) {
        return a.tokens_[x].content.size() > a.tokens_[y].content.size();
      });
  return a;
}

const AddedToken* AddedTokens::by_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedTokens::by_content(std::string_view s) const {
  auto it = by_content_.find(std::string(s));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

std::vector<Segment> AddedTokens::split(std::string_view text, bool normalized) const {
  std::vector<Segment> out;
  size_t emitted = 0;  // text before this was already emitted
  const auto& table = first_byte_[normalized ? 1 : 0];
  for (size_t i = 0; i < text.size();) {
    const auto& cands = table[static_cast<unsigned char>(text[i])];
    const AddedToken* hit = nullptr;
    for (size_t c : cands) {  // longest first: leftmost-longest, as aho-corasick in `tokenizers`
      const auto& t = tokens_[c];
      if (text.compare(i, t.content.size(), t.content) == 0) {
        hit = &t;
        break;
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    size_t b = i, e = i + hit->content.size();
    if (hit->single_word) {
      bool left_ok = b == 0 || !is_word_byte(static_cast<unsigned char>(text[b - 1]));
      bool right_ok = e == text.size() || !is_word_byte(static_cast<unsigned char>(text[e]));
      if (!left_ok || !right_ok) {
        i = e;  // the match is consumed without splitting, as `tokenizers` does
        continue;
      }
    }
    if (hit->lstrip)
      while (b > emitted && is_space_byte(static_cast<unsigned char>(text[b - 1]))) --b;
    if (hit->rstrip)
      while (e < text.size() && is_space_byte(static_cast<unsigned char>(text[e]))) ++e;
    if (b > emitted) out.push_back({-1, std::string(text.substr(emitted, b - emitted)), emitted});
    out.push_back({hit->id, hit->content, b});
    emitted = e;
    i = e;
  }
  if (emitted < text.size()) out.push_back({-1, std::string(text.substr(emitted)), emitted});
  return out;
}

}  // namespace fusecheck
