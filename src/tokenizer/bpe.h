// The BPE model of tokenizer.json ("model": {"type": "BPE"}): vocab, merges by rank, byte fallback
// to <0xNN> tokens, unk (optionally fused) and ignore_merges. Words come in already pre-tokenized
// (for byte-level BPE, already mapped through GPT-2's byte table).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/json_util.h"
#include "util/result.h"

namespace fusecheck {

class BpeModel {
 public:
  // `max_id` bounds the ids the file may use (hostile files must not force a huge table).
  static Result<BpeModel> parse(const tok_json::json& model, const std::string& file,
                                int32_t max_id);

  // Appends the ids of one word.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token string of an id, or nullptr when the vocab has no such id.
  const std::string* id_to_token(int32_t id) const;
  // One past the largest id in the vocab.
  int32_t size() const { return int32_t(id_to_token_.size()); }

 private:
  Status parse_vocab(const tok_json::json& model, const std::string& file, int32_t max_id);
  Status parse_merges(const tok_json::json& model, const std::string& file);
  struct Merge {
    int32_t rank, new_id;
  };
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  const Merge* find_merge(int32_t a, int32_t b) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_ids_{};  // id of "<0xNN>" per byte, or -1
  std::optional<int32_t> unk_;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
};

}  // namespace fusecheck
