// Conformance of the Qwen3 tokenizer with the JS reference encoder (@lenml/tokenizers, run by
// tests/oracle/encode.mjs under node) on a generated corpus: English, code, CJK, emoji with ZWJ
// sequences, combining marks, RTL, whitespace runs, digits, contractions, special tokens, and a
// seeded random mix. Invalid UTF-8 (which JS strings cannot hold) and hostile sizes are tested
// without node. Skips when the oracle (scripts/setup_oracle.sh) or node is missing.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "tokenizer_testing.h"

namespace fusecheck {
namespace {

using namespace fusecheck::testing;
using nlohmann::json;

const Tokenizer& qwen3() {
  static const Tokenizer tok = [] {
    auto r = Tokenizer::load(qwen3_model_dir());
    if (!r.ok()) throw std::runtime_error(r.error().message);
    return std::move(r).value();
  }();
  return tok;
}

bool have_node() {
  return std::system("node --version >/dev/null 2>&1") == 0;
}

std::vector<std::string> fixed_corpus() {
  return {
      "The quick brown fox jumps over the lazy dog.",
      "I'm sure you've seen it; they'll say we'd DONE it, HE'S gone, it'S fine. YOU'RE, WE'LL",
      "don't can't won't shan't 'tis o'clock rock'n'roll",
      "int main(int argc, char** argv) {\n\treturn argc > 1 ? 0 : -1;\n}\n",
      "def f(x):\n    if x:\n        return [i**2 for i in range(10)]  # squares\n\n\n",
      "for (let i = 0; i < n; i++) { sum += a[i] * b[i]; }  // dot",
      "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
      "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C\xEF\xBC\x81",  // 你好，世界！
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83"
      "\x88",                                                           // 日本語のテキスト
      "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4 \xEB\xAC\xB8\xEC\x9E\xA5",  // 한국어 문장
      "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 family, "
      "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD thumbs, \xF0\x9F\x8F\xB3\xEF\xB8\x8F\xE2\x80\x8D\xF0\x9F"
      "\x8C\x88 flag",
      "e\xCC\x81 a\xCC\x88 n\xCC\x83 vs \xC3\xA9 \xC3\xA4 \xC3\xB1",  // NFD vs NFC
      "\xE1\x84\x92\xE1\x85\xA1\xE1\x86\xAB",                         // Hangul jamo (NFC composes)
      "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7 \xD8\xA8\xD8\xA7\xD9\x84\xD8\xB9\xD8\xA7\xD9\x84"
      "\xD9\x85 123",                                                              // Arabic
      "\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D \xD7\xA2\xD7\x95\xD7\x9C\xD7\x9D!",        // Hebrew
      "\xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA5\x8D\xE0\xA4\xA4\xE0\xA5\x87",  // Devanagari
      "   leading and trailing   ",
      "tabs\t\tand\nnewlines\r\n\r\n\n  \n\t mixed \u00a0nbsp\u3000ideographic",
      "\n\n\n\n",
      " ",
      "",
      "12345678901234567890 3.14159 1,000,000 0x1F 1e-9",
      "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>",
      "text<|endoftext|>more<think>reason</think>answer<tool_call>x</tool_call>",
      "<|im_start|><|im_start|>  <|im_end|>\n<|fake|> <|im_sta rt|>",
      "!!!??? ... --- *** ### $$$ %%% &&& ((( ))) [[[ ]]] {{{ }}}",
      "caf\xC3\xA9 na\xC3\xAF"
      "ve r\xC3\xA9sum\xC3\xA9 \xC3\x85ngstr\xC3\xB6m \xE2\x84\xAB",
      "\xE2\x88\x80x\xE2\x88\x88\xE2\x84\x9D: x\xC2\xB2 \xE2\x89\xA5 0 \xE2\x86\x92 \xE2\x88\x9E",
      "https://example.com/path?q=1&r=two#frag user@example.org",
      "MixedCASE camelCase snake_case kebab-case SCREAMING_CASE",
  };
}

// Random strings mixing scripts, whitespace, digits, punctuation, emoji and special tokens.
std::vector<std::string> random_corpus(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  const std::vector<std::vector<char32_t>> pools = {
      {U'a', U'b', U'e', U'o', U'r', U's', U't', U'x', U'Z', U'Q', U'I', U'S'},
      {U'0', U'1', U'2', U'5', U'7', U'9'},
      {U' ', U' ', U' ', U'\t', U'\n', U'\r', 0xA0, 0x3000, 0x2003},
      {U'.', U',', U'!', U'?', U'\'', U'"', U'(', U')', U'-', U'_', U'#', U'@', U'/', U'\\'},
      {0x4F60, 0x597D, 0x4E16, 0x754C, 0x3042, 0x30AB, 0xD55C, 0xAE00},
      {0x1F600, 0x1F44D, 0x1F3FD, 0x200D, 0x2764, 0xFE0F, 0x1F468, 0x1F469},
      {0x0301, 0x0308, 0x0303, 0x0327, 0x05D0, 0x05D1, 0x0627, 0x0644, 0x0928, 0x094D},
  };
  const std::vector<std::string> words = {
      "'s",           "'ll",        "'RE",     "'ve",           "'D",
      "<|im_start|>", "<|im_end|>", "<think>", "<|endoftext|>", "    "};
  std::vector<std::string> out;
  for (size_t k = 0; k < n; ++k) {
    std::string s;
    size_t len = 1 + rng() % 40;
    for (size_t i = 0; i < len; ++i) {
      if (rng() % 10 == 0) {
        s += words[rng() % words.size()];
        continue;
      }
      const auto& pool = pools[rng() % pools.size()];
      utf8::append(s, pool[rng() % pool.size()]);
    }
    out.push_back(s);
  }
  return out;
}

TEST(TokenizerConformance, MatchesJsReferenceEncoder) {
  FC_REQUIRE_ORACLE();
  if (!have_node()) GTEST_SKIP() << "node not found; the JS reference encoder needs Node.js";
  std::vector<std::string> corpus = fixed_corpus();
  for (auto& s : random_corpus(500, 20240601)) corpus.push_back(std::move(s));
  TempDir d;
  write_text(d / "in.json", json(corpus).dump());
  std::string cmd = "node " + std::string(FUSECHECK_SOURCE_DIR) + "/tests/oracle/encode.mjs '" +
                    oracle_dir() + "' '" + qwen3_model_dir() + "' '" + (d / "in.json") + "' '" +
                    (d / "out.json") + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  json ref = read_json(d / "out.json");
  ASSERT_EQ(ref["ids"].size(), corpus.size());
  int mismatches = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    auto want = ref["ids"][i].get<std::vector<int32_t>>();
    auto got = qwen3().encode(corpus[i]);
    if (got != want && ++mismatches <= 10)
      ADD_FAILURE() << "text " << json(corpus[i]).dump() << "\n want " << json(want).dump()
                    << "\n  got " << json(got).dump();
    // Round trip: decoding gives the NFC form back (special tokens included, verbatim).
    EXPECT_EQ(qwen3().decode(got), ref["nfc"][i].get<std::string>()) << json(corpus[i]).dump();
  }
  EXPECT_EQ(mismatches, 0) << "of " << corpus.size() << " strings";
}

// Where the JS library and HF `tokenizers` (Rust) disagree, the Rust oracle wins (our own encoder
// is held to it in test_tokenizer_qwen3.cpp); this test only reports such cases.
TEST(TokenizerConformance, ReportsJsDisagreementsWithRustOracle) {
  FC_REQUIRE_ORACLE();
  if (!have_node()) GTEST_SKIP() << "node not found";
  json o = read_json(data_dir() + "/tokenizer/qwen3.json");
  std::vector<std::string> texts;
  for (const auto& c : o["cases"]) texts.push_back(c["text"]);
  TempDir d;
  write_text(d / "in.json", json(texts).dump());
  std::string cmd = "node " + std::string(FUSECHECK_SOURCE_DIR) + "/tests/oracle/encode.mjs '" +
                    oracle_dir() + "' '" + qwen3_model_dir() + "' '" + (d / "in.json") + "' '" +
                    (d / "out.json") + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  json ref = read_json(d / "out.json");
  int disagree = 0;
  for (size_t i = 0; i < texts.size(); ++i)
    if (ref["ids"][i] != o["cases"][i]["ids"]) {
      ++disagree;
      std::cout << "[ note ] JS differs from Rust on " << json(texts[i]).dump() << "\n";
    }
  RecordProperty("js_rust_disagreements", disagree);
}

// Invalid UTF-8 is replaced by U+FFFD (one per maximal invalid subpart) before normalization, the
// way HF tokenizers sees text that Python decoded with errors="replace".
TEST(TokenizerConformance, InvalidUtf8IsReplacedNotCrashed) {
  FC_REQUIRE_ORACLE();
  const Tokenizer& t = qwen3();
  EXPECT_EQ(t.encode("a\xFF"
                     "b"),
            t.encode("a\xEF\xBF\xBD"
                     "b"));
  EXPECT_EQ(t.encode("x\xE4\xBD"), t.encode("x\xEF\xBF\xBD"));
  EXPECT_EQ(t.encode("\xC0\xAF<|im_end|>"), t.encode("\xEF\xBF\xBD\xEF\xBF\xBD<|im_end|>"));
  std::mt19937 rng(7);
  for (int k = 0; k < 300; ++k) {
    std::string s(1 + rng() % 64, '\0');
    for (char& c : s) c = char(rng() % 256);
    auto ids = t.encode(s);
    EXPECT_EQ(ids, t.encode(utf8::sanitize(s)));
    std::string back = t.decode(ids);
    EXPECT_TRUE(utf8::is_valid(back));
    for (int32_t id : ids) EXPECT_TRUE(id >= 0 && id < t.vocab_size());
  }
}

TEST(TokenizerConformance, HostileSizesStayFast) {
  FC_REQUIRE_ORACLE();
  const Tokenizer& t = qwen3();
  auto start = std::chrono::steady_clock::now();
  std::string spaces(1 << 20, ' '), letters(1 << 18, 'a'), digits(1 << 18, '7');
  std::string mixed;
  for (int i = 0; i < 20000; ++i) mixed += "\xE4\xBD\xA0 \t\n\xF0\x9F\x98\x80";
  for (const std::string* s : {&spaces, &letters, &digits, &mixed}) {
    auto ids = t.encode(*s);
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(t.decode(ids), *s);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(secs, 30.0);
}

}  // namespace
}  // namespace fusecheck
