// The tokenizer of a Hugging Face checkpoint, read from its tokenizer.json (and
// tokenizer_config.json): byte-level BPE (Qwen2/Qwen3, Llama 3) and SentencePiece-style BPE with
// byte fallback (Llama 2, Mistral, TinyLlama). The pipeline is driven by the JSON, component by
// component, and matches the HF `tokenizers` library's ids; docs/TOKENIZER.md has the details.
//
// A Tokenizer is immutable after load and cheap to copy (its tables are shared), so one instance
// can serve several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace fusecheck {

struct ChatMessage {
  std::string role, content;
};
struct ChatOptions {
  bool add_generation_prompt = true;
  bool enable_thinking = true;  // Qwen3: false adds an empty <think></think> block
};

struct TokenizerImpl;

class Tokenizer {
 public:
  // Loads DIR/tokenizer.json and, when present, DIR/tokenizer_config.json (chat_template,
  // add_bos_token, bos/eos).
  static Result<Tokenizer> load(const std::string& dir);

  // Encodes text; added/special tokens appearing in the text are matched as single ids. No BOS/EOS
  // added. Invalid UTF-8 in `text` is replaced by U+FFFD first (docs/TOKENIZER.md).
  std::vector<int32_t> encode(std::string_view text) const;
  // encode() plus what the model expects at sequence start (BOS for Llama-2 style /
  // add_bos_token=true; nothing for Qwen). No second BOS when the text already starts with it.
  std::vector<int32_t> encode_prompt(std::string_view text) const;
  // Ids outside the vocabulary are skipped. The result is valid UTF-8.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  int32_t vocab_size() const;  // including added tokens: one past the largest id
  std::optional<int32_t> token_id(std::string_view token) const;
  // The token string of an id (as stored in tokenizer.json), if the id exists.
  std::optional<std::string> token(int32_t id) const;
  std::optional<int32_t> bos_id() const;
  std::vector<int32_t> eos_ids() const;  // from tokenizer_config eos_token
  bool is_special(int32_t id) const;

  // Renders messages through the model's chat format (Qwen3/Qwen2 ChatML, Llama 3); an error if
  // the template is absent or not one of those.
  Result<std::string> render_chat(std::span<const ChatMessage> msgs, const ChatOptions& opt) const;

  const TokenizerImpl& impl() const { return *impl_; }

 private:
  explicit Tokenizer(std::shared_ptr<const TokenizerImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const TokenizerImpl> impl_;
};

// Streaming decoder: push ids one at a time, get back the text that is complete so far; holds back
// incomplete UTF-8 sequences (byte-level BPE / byte-fallback tokens can split a code point).
// Concatenating every push() and the final flush() gives decode() of all the ids.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = false);
  std::string push(int32_t id);
  // Whatever is still held back, with an incomplete sequence at the end replaced by U+FFFD.
  std::string flush();

 private:
  Tokenizer tok_;
  bool skip_special_;
  std::vector<int32_t> ids_;
  size_t prefix_ = 0;  // window start: the last token already emitted, for decoder context
  size_t read_ = 0;    // everything before this has been emitted
};

}  // namespace fusecheck
