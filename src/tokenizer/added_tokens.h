// Added tokens (tokenizer.json "added_tokens"): special and non-special tokens that are matched in
// the input before the normal pipeline runs, as the HF `tokenizers` AddedVocabulary does:
// leftmost-longest matching, with the single_word, lstrip and rstrip flags; tokens with
// normalized = false are matched in the raw text, the others in the normalized text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/json_util.h"
#include "util/result.h"

namespace fusecheck {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false, single_word = false, lstrip = false, rstrip = false, normalized = false;
};

// A run of input: either an added token (id >= 0) or text for the normal pipeline (id = -1).
struct Segment {
  int32_t id = -1;
  std::string text;
  size_t offset = 0;  // byte offset in the string that was split
};

class AddedTokens {
 public:
  static Result<AddedTokens> parse(const tok_json::json& list, const std::string& file,
                                   int32_t max_id);

  // Splits text on the tokens whose `normalized` flag equals `normalized`.
  std::vector<Segment> split(std::string_view text, bool normalized) const;
  bool has_normalized() const { return has_normalized_; }

  const AddedToken* by_id(int32_t id) const;
  const AddedToken* by_content(std::string_view s) const;
  int32_t max_id() const { return max_id_; }
  const std::vector<AddedToken>& all() const { return tokens_; }

 private:
  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_content_;
  // Candidate tokens by first byte, longest first, per `normalized` flag.
  std::vector<size_t> first_byte_[2][256];
  bool has_normalized_ = false;
  int32_t max_id_ = -1;
};

}  // namespace fusecheck
