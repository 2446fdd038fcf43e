// BPE model; see bpe.h. The merge loop follows `tokenizers`' Word::merge_all: a min-heap of
// candidate pairs ordered by (rank, position), so equal ranks merge leftmost first, in
// O(n log n) even for hostile multi-megabyte words.
#include "tokenizer/bpe.h"

#include <fmt/format.h>

#include <queue>

#include "tokenizer/utf8.h"

namespace fusecheck {

using tok_json::json;

// model.vocab: token -> id, every id in [0, max_id); the id -> token table from it.
Status BpeModel::parse_vocab(const json& m, const std::string& file, int32_t max_id) {
  const json* vocab = tok_json::find(m, "vocab");
  if (!vocab || !vocab->is_object())
    return make_error("{}: expected an object at model.vocab, found {}", file,
                      vocab ? vocab->type_name() : "nothing");
  vocab_.reserve(vocab->size());
  int32_t top = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const json& v = it.value();
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= max_id)
      return make_error("{}: expected an id 0..{} for model.vocab[\"{}\"], found {}", file,
                        max_id - 1, printable(it.key()), printable(v.dump()));
    int32_t id = int32_t(v.get<int64_t>());
    vocab_.emplace(it.key(), id);
    top = std::max(top, id);
  }
  id_to_token_.assign(size_t(top + 1), std::string());
  has_id_.assign(size_t(top + 1), false);
  for (const auto& [tok, id] : vocab_) {
    id_to_token_[size_t(id)] = tok;
    has_id_[size_t(id)] = true;
  }
  return ok_status();
}

// model.merges: ranked pairs, both halves and their concatenation in the vocab.
Status BpeModel::parse_merges(const json& m, const std::string& file) {
  const json* merges = tok_json::find(m, "merges");
  if (merges && !merges->is_array())
    return make_error("{}: expected an array at model.merges, found {}", file, merges->type_name());
  if (merges) {
    merges_.reserve(merges->size());
    for (size_t r = 0; r < merges->size(); ++r) {
      const json& e = (*merges)[r];
      std::string left, right;
      // Older files write "a b"; newer ones [a, b] (which allows spaces inside a token).
      if (e.is_string()) {
        const auto& s = e.get_ref<const std::string&>();
        size_t sp = s.find(' ');
        if (sp == std::string::npos)
          return make_error("{}: expected \"left right\" at model.merges[{}], found \"{}\"", file,
                            r, printable(s));
        left = s.substr(0, sp);
        right = s.substr(sp + 1);
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        left = e[0].get<std::string>();
        right = e[1].get<std::string>();
      } else {
        return make_error(
            "{}: expected a string or a pair of strings at model.merges[{}], found {}", file, r,
            printable(e.dump()));
      }
      auto a = vocab_.find(left), c = vocab_.find(right), n = vocab_.find(left + right);
      if (a == vocab_.end() || c == vocab_.end() || n == vocab_.end())
        return make_error(
            "{}: expected the tokens of model.merges[{}] (\"{}\" + \"{}\") in the "
            "vocab, found one missing",
            file, r, printable(left), printable(right));
      // A repeated pair takes its last rank, as `tokenizers` (collecting into a map) does.
      merges_.insert_or_assign(key(a->second, c->second), Merge{int32_t(r), n->second});
    }
  }
  return ok_status();
}

Result<BpeModel> BpeModel::parse(const json& m, const std::string& file, int32_t max_id) {
  BpeModel b;
  FC_ASSIGN(type, tok_json::get_string_or(m, "type", "BPE", file, "model"));
  if (type != "BPE")
    return make_error(
        "{}: expected model.type \"BPE\", found \"{}\"; hint: only BPE models "
        "(byte-level or SentencePiece-style) are supported",
        file, printable(type));
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    FC_ASSIGN(v, tok_json::get_string_or(m, k, "", file, "model"));
    if (!v.empty())
      return make_error(
          "{}: expected model.{} to be empty or null, found \"{}\"; hint: "
          "WordPiece-style BPE affixes are not supported",
          file, k, printable(v));
  }
  FC_ASSIGN(bf, tok_json::get_bool_or(m, "byte_fallback", false, file, "model"));
  FC_ASSIGN(fu, tok_json::get_bool_or(m, "fuse_unk", false, file, "model"));
  FC_ASSIGN(im, tok_json::get_bool_or(m, "ignore_merges", false, file, "model"));
  b.byte_fallback_ = bf;
  b.fuse_unk_ = fu;
  b.ignore_merges_ = im;

  FC_TRY(b.parse_vocab(m, file, max_id));
  FC_TRY(b.parse_merges(m, file));

  for (int i = 0; i < 256; ++i) {
    auto it = b.vocab_.find(fmt::format("<0x{:02X}>", i));
    b.byte_ids_[size_t(i)] = it == b.vocab_.end() ? -1 : it->second;
  }
  FC_ASSIGN(unk, tok_json::get_string_or(m, "unk_token", "", file, "model"));
  if (!unk.empty()) {
    auto it = b.vocab_.find(unk);
    if (it == b.vocab_.end())
      return make_error("{}: expected model.unk_token \"{}\" in the vocab, found it missing", file,
                        printable(unk));
    b.unk_ = it->second;
  }
  return b;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || size_t(id) >= id_to_token_.size() || !has_id_[size_t(id)]) return nullptr;
  return &id_to_token_[size_t(id)];
}

const BpeModel::Merge* BpeModel::find_merge(int32_t a, int32_t b) const {
  auto it = merges_.find(key(a, b));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto it = vocab_.find(std::string(word)); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // Initial symbols: one per character; unknown characters become byte tokens (byte_fallback),
  // else unk (consecutive ones fused when fuse_unk), else nothing, as in `tokenizers`.
  struct Sym {
    int32_t id, prev, next;
    bool alive;
  };
  std::vector<Sym> syms;
  syms.reserve(word.size());
  auto push = [&](int32_t id) {
    int32_t i = int32_t(syms.size());
    syms.push_back({id, i - 1, -1, true});
    if (i > 0) syms[size_t(i - 1)].next = i;
  };
  bool last_unk = false;
  std::string ch;
  for (size_t i = 0; i < word.size();) {
    size_t len = utf8::valid_sequence_length(word, i);
    if (len == 0) len = 1;  // words are valid UTF-8; this only guards against misuse
    ch.assign(word.substr(i, len));
    i += len;
    if (auto it = vocab_.find(ch); it != vocab_.end()) {
      push(it->second);
      last_unk = false;
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : ch) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        for (char c : ch) push(byte_ids_[static_cast<unsigned char>(c)]);
        last_unk = false;
        continue;
      }
    }
    if (unk_) {
      if (!(fuse_unk_ && last_unk)) push(*unk_);
      last_unk = true;
    }
  }
  if (syms.empty()) return;

  struct Cand {
    int32_t rank, pos, new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  for (size_t i = 0; i + 1 < syms.size(); ++i)
    if (const Merge* m = find_merge(syms[i].id, syms[i + 1].id))
      heap.push({m->rank, int32_t(i), m->new_id});
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    Sym& s = syms[size_t(c.pos)];
    if (!s.alive || s.next < 0) continue;
    Sym& r = syms[size_t(s.next)];
    const Merge* m = find_merge(s.id, r.id);
    if (!m || m->new_id != c.new_id || m->rank != c.rank) continue;  // stale candidate
    s.id = c.new_id;
    r.alive = false;
    s.next = r.next;
    if (s.next >= 0) syms[size_t(s.next)].prev = c.pos;
    if (s.prev >= 0)
      if (const Merge* pm = find_merge(syms[size_t(s.prev)].id, s.id))
        heap.push({pm->rank, s.prev, pm->new_id});
    if (s.next >= 0)
      if (const Merge* nm = find_merge(s.id, syms[size_t(s.next)].id))
        heap.push({nm->rank, c.pos, nm->new_id});
  }
  for (int32_t i = 0; i >= 0; i = syms[size_t(i)].next) out.push_back(syms[size_t(i)].id);
}

}  // namespace fusecheck
