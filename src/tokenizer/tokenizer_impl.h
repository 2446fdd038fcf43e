// Internal state of a loaded Tokenizer, shared by tokenizer.cpp, chat.cpp and stream_decoder.cpp.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/components.h"
#include "tokenizer/tokenizer.h"

namespace fusecheck {

enum class ChatFormat { kNone, kUnknown, kQwen3, kChatML, kLlama3 };

struct TokenizerImpl {
  std::string json_path, config_path;  // config_path empty when there is no tokenizer_config.json
  AddedTokens added;
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  BpeModel model;
  Decoder decoder;
  int32_t vocab_size = 0;

  std::optional<int32_t> bos;
  std::vector<int32_t> eos;
  std::vector<int32_t> prompt_prefix;  // ids encode_prompt puts first

  ChatFormat chat = ChatFormat::kNone;
  std::string bos_text;        // Llama 3: the BOS token's text, first in the rendering
  std::string default_system;  // ChatML: system prompt used when the first message is not one
  std::string llama_date;      // Llama 3.1+: the "Today Date" of the system header; empty: 3.0
};

// Decodes ids to bytes (raw: invalid UTF-8 kept for the streaming decoder; see decode_tokens).
std::string decode_ids(const TokenizerImpl& t, std::span<const int32_t> ids, bool skip_special,
                       bool raw);

// Chat-format detection from the chat_template text (chat.cpp).
void detect_chat_format(const std::string& tmpl, TokenizerImpl& t);
Result<std::string> render_chat(const TokenizerImpl& t, std::span<const ChatMessage> msgs,
                                const ChatOptions& opt);

}  // namespace fusecheck
