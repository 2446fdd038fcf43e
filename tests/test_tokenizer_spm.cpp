// SentencePiece-style BPE with byte fallback (stories260K's Llama-2 tokenizer.json) against
// llama2.c's run.c (tests/data/stories260K/expected.json) and its vocab, plus UTF-8 repair
// against Python's bytes.decode("utf-8", "replace").
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

std::string stories_dir() {
  return data_dir() + "/stories260K";
}

Tokenizer load_or_die(const std::string& dir) {
  auto r = Tokenizer::load(dir);
  if (!r.ok()) throw std::runtime_error(r.error().message);
  return std::move(r).value();
}

TEST(TokenizerSpm, LoadsStories260K) {
  Tokenizer t = load_or_die(stories_dir() + "/hf");
  EXPECT_EQ(t.vocab_size(), 512);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_ids(), std::vector<int32_t>{2});
  EXPECT_TRUE(t.is_special(1));
  EXPECT_EQ(t.token_id("<0x0A>"), 13);
  // No chat template: render_chat explains, naming the config file.
  std::vector<ChatMessage> msgs{{"user", "hi"}};
  auto chat = t.render_chat(msgs, ChatOptions{});
  ASSERT_FALSE(chat.ok());
  EXPECT_NE(chat.error().message.find("tokenizer_config.json"), std::string::npos);
}

// llama2.c's tok512.bin pieces (vocab.json) are tokenizer.json's tokens with U+2581 as ' '.
TEST(TokenizerSpm, TokensMatchLlama2cVocab) {
  Tokenizer t = load_or_die(stories_dir() + "/hf");
  json vocab = read_json(stories_dir() + "/vocab.json");
  int checked = 0;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    int32_t id = std::stoi(it.key());
    if (id == 1 || id == 2) continue;  // llama2.c stores BOS/EOS as "\n<s>\n" / "\n</s>\n"
    auto tok = t.token(id);
    ASSERT_TRUE(tok.has_value()) << id;
    std::string piece;
    for (size_t i = 0; i < tok->size(); ++i) {
      if (tok->compare(i, 3, "\xE2\x96\x81") == 0)
        piece += ' ', i += 2;
      else
        piece += (*tok)[i];
    }
    EXPECT_EQ(piece, it.value().get<std::string>()) << id;
    ++checked;
  }
  EXPECT_EQ(checked, 510);
}

TEST(TokenizerSpm, PromptIdsMatchRunC) {
  Tokenizer t = load_or_die(stories_dir() + "/hf");
  json e = read_json(stories_dir() + "/expected.json");
  ASSERT_FALSE(e["cases"].empty());
  for (const auto& c : e["cases"]) {
    auto want = c["prompt_token_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(t.encode_prompt(c["prompt"].get<std::string>()), want) << c["prompt"];
    // A text that already starts with BOS gets no second one.
    std::vector<int32_t> body(want.begin() + 1, want.end());
    EXPECT_EQ(t.encode(c["prompt"].get<std::string>()), body);
    EXPECT_EQ(t.encode_prompt("<s>" + c["prompt"].get<std::string>()).front(), 1);
  }
}

TEST(TokenizerSpm, DecodeMatchesRunCText) {
  Tokenizer t = load_or_die(stories_dir() + "/hf");
  json e = read_json(stories_dir() + "/expected.json");
  for (const auto& c : e["cases"]) {
    auto ids = c["prompt_token_ids"].get<std::vector<int32_t>>();
    auto gen = c["generated_token_ids"].get<std::vector<int32_t>>();
    ids.insert(ids.end(), gen.begin(), gen.end());
    // run.c strips the space after BOS (as the Strip decoder does) and prints no BOS.
    std::string text = t.decode(ids, /*skip_special=*/true);
    EXPECT_EQ(text, c["text"].get<std::string>());
    StreamDecoder sd(t, /*skip_special=*/true);
    std::string streamed;
    for (int32_t id : ids) streamed += sd.push(id);
    streamed += sd.flush();
    EXPECT_EQ(streamed, text);
  }
}

// The older Llama-2 layout (normalizer Prepend + Replace, no pre-tokenizer) encodes the same.
TEST(TokenizerSpm, LegacyNormalizerLayoutGivesTheSameIds) {
  json tj = read_json(stories_dir() + "/hf/tokenizer.json");
  tj["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
        {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}};
  tj["pre_tokenizer"] = nullptr;
  TempDir d;
  write_text(d / "tokenizer.json", tj.dump());
  write_text(d / "tokenizer_config.json", read_text(stories_dir() + "/hf/tokenizer_config.json"));
  Tokenizer t = load_or_die(d.path());
  json e = read_json(stories_dir() + "/expected.json");
  for (const auto& c : e["cases"])
    EXPECT_EQ(t.encode_prompt(c["prompt"].get<std::string>()),
              c["prompt_token_ids"].get<std::vector<int32_t>>());
}

TEST(TokenizerSpm, ByteFallbackRoundTripsTextOutsideTheVocab) {
  Tokenizer t = load_or_die(stories_dir() + "/hf");
  // stories260K's 512 tokens hold no CJK or emoji: they become <0xNN> byte tokens.
  const std::string text = "Tim saw \xE4\xBD\xA0\xE5\xA5\xBD and \xF0\x9F\x98\x80!";
  auto ids = t.encode(text);
  EXPECT_EQ(t.decode(ids), text);
  int bytes = 0;
  for (int32_t id : ids) bytes += (id >= 3 && id < 3 + 256);
  EXPECT_EQ(bytes, 10);
  StreamDecoder sd(t);
  std::string streamed;
  for (int32_t id : ids) {
    std::string p = sd.push(id);
    EXPECT_TRUE(utf8::is_valid(p));
    streamed += p;
  }
  EXPECT_EQ(streamed + sd.flush(), text);
  // An invalid byte group decodes to one U+FFFD per byte, as `tokenizers`' ByteFallback does.
  std::vector<int32_t> bad{*t.token_id("<0xE4>"), *t.token_id("<0xBD>")};
  EXPECT_EQ(t.decode(bad), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

// Expected strings from Python: bytes.decode("utf-8", "replace").
TEST(TokenizerUtf8, SanitizeMatchesPythonReplace) {
  const std::string R = "\xEF\xBF\xBD";
  EXPECT_EQ(utf8::sanitize("\xF0\x80\x80"
                           "A"),
            R + R + R + "A");
  EXPECT_EQ(utf8::sanitize("a\xE4\xBD"
                           "b"),
            "a" + R + "b");
  EXPECT_EQ(utf8::sanitize("\xED\xA0\x80x"), R + R + R + "x");
  EXPECT_EQ(utf8::sanitize("\xC0\xAFz"), R + R + "z");
  EXPECT_EQ(utf8::sanitize("\xF4\x90\x80\x80"), R + R + R + R);
  EXPECT_EQ(utf8::sanitize("\xE4\xBD"), R);
  EXPECT_EQ(utf8::sanitize("ok\xFF"), "ok" + R);
  EXPECT_EQ(utf8::sanitize(std::string("a\0b", 3)), std::string("a\0b", 3));
}

TEST(TokenizerUtf8, IncompleteTail) {
  EXPECT_EQ(utf8::incomplete_tail("abc"), 3u);
  EXPECT_EQ(utf8::incomplete_tail("ab\xE4\xBD"), 2u);
  EXPECT_EQ(utf8::incomplete_tail("ab\xF0\x9F\x98"), 2u);
  EXPECT_EQ(utf8::incomplete_tail("ab\xF0\x9F\x98\x80"), 6u);
  EXPECT_EQ(utf8::incomplete_tail("ab\xFF"), 3u);      // invalid, not incomplete
  EXPECT_EQ(utf8::incomplete_tail("ab\xE4\x41"), 4u);  // broken already: nothing to wait for
}

}  // namespace
}  // namespace fusecheck
