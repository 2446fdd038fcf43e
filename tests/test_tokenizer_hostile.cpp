// Hostile and malformed tokenizer files (one-line Result errors naming the file, never a crash),
// chat formats other than Qwen3 (Llama 3, Qwen2 ChatML, unknown), and the `tokenize` CLI.
#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer_testing.h"

namespace fusecheck {
namespace {

using namespace fusecheck::testing;
using nlohmann::json;

std::string stories_hf() {
  return data_dir() + "/stories260K/hf";
}

void expect_one_line_error(const Result<Tokenizer>& r, const std::string& file,
                           const std::string& what) {
  ASSERT_FALSE(r.ok()) << what;
  const std::string& m = r.error().message;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  EXPECT_NE(m.find(file), std::string::npos) << m;
  EXPECT_NE(m.find(what), std::string::npos) << m;
}

TEST(TokenizerHostile, MissingFilesNameTheFile) {
  TempDir d;
  expect_one_line_error(Tokenizer::load(d.path()), d / "tokenizer.json", "cannot open");
  expect_one_line_error(Tokenizer::load(d / "nope"), "nope/tokenizer.json", "cannot open");
}

TEST(TokenizerHostile, TruncatedAndInvalidJson) {
  std::string full = read_text(stories_hf() + "/tokenizer.json");
  TempDir d;
  for (size_t cut : {size_t(0), size_t(1), full.size() / 3, full.size() - 2}) {
    write_text(d / "tokenizer.json", full.substr(0, cut));
    expect_one_line_error(Tokenizer::load(d.path()), d / "tokenizer.json", "not valid JSON");
  }
  write_text(d / "tokenizer.json", full);
  write_text(d / "tokenizer_config.json", "{\"bos_token\": ");
  expect_one_line_error(Tokenizer::load(d.path()), d / "tokenizer_config.json", "not valid JSON");
}

TEST(TokenizerHostile, WrongTypesAndUnknownComponents) {
  const json base = read_json(stories_hf() + "/tokenizer.json");
  struct Case {
    std::function<void(json&)> mutate;
    std::string what;
  };
  const std::vector<Case> cases = {
      {[](json& j) { j = json::array(); }, "expected a JSON object"},
      {[](json& j) { j.erase("model"); }, "model"},
      {[](json& j) { j["model"]["vocab"] = json::array(); }, "model.vocab"},
      {[](json& j) { j["model"]["vocab"]["a"] = "7"; }, "model.vocab[\"a\"]"},
      {[](json& j) { j["model"]["vocab"]["a"] = 1e12; }, "model.vocab[\"a\"]"},
      {[](json& j) { j["model"]["vocab"]["a"] = -1; }, "model.vocab[\"a\"]"},
      {[](json& j) { j["model"]["merges"][0] = 5; }, "model.merges[0]"},
      {[](json& j) { j["model"]["merges"][0] = "nospace"; }, "model.merges[0]"},
      {[](json& j) {
         j["model"]["merges"][1] = json::array({"q", "zz"});
       },
       "model.merges[1]"},
      {[](json& j) { j["model"]["merges"] = "x"; }, "model.merges"},
      {[](json& j) { j["model"]["type"] = "Unigram"; }, "Unigram"},
      {[](json& j) { j["model"]["unk_token"] = "<nope>"; }, "unk_token"},
      {[](json& j) { j["added_tokens"][0]["id"] = -1; }, "added_tokens[0].id"},
      {[](json& j) { j["added_tokens"][1]["id"] = "1"; }, "added_tokens[1].id"},
      {[](json& j) { j["added_tokens"][0].erase("content"); }, "added_tokens[0].content"},
      {[](json& j) { j["added_tokens"][0]["special"] = "yes"; }, "added_tokens[0].special"},
      {[](json& j) { j["added_tokens"] = 3; }, "added_tokens"},
      {[](json& j) {
         j["pre_tokenizer"] = {{"type", "Whitespace"}};
       },
       "\"Whitespace\""},
      {[](json& j) { j["pre_tokenizer"]["replacement"] = "ab"; }, "one character"},
      {[](json& j) { j["pre_tokenizer"]["prepend_scheme"] = 1; }, "prepend_scheme"},
      {[](json& j) {
         j["pre_tokenizer"] = {
             {"type", "Split"}, {"pattern", {{"Regex", "(["}}}, {"behavior", "Isolated"}};
       },
       "regex"},
      {[](json& j) {
         j["pre_tokenizer"] = {
             {"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}};
       },
       "Sideways"},
      {[](json& j) {
         j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", 1}};
       },
       "pretokenizers"},
      {[](json& j) {
         j["normalizer"] = {{"type", "Lowercase"}};
       },
       "\"Lowercase\""},
      {[](json& j) {
         j["normalizer"] = {{"kind", "NFC"}};
       },
       "normalizer.type"},
      {[](json& j) {
         j["decoder"] = {{"type", "WordPiece"}};
       },
       "\"WordPiece\""},
      {[](json& j) { j["decoder"]["decoders"][3]["start"] = 1e9; }, "start"},
      {[](json& j) { j["post_processor"]["special_tokens"] = json::object(); }, "post_processor"},
  };
  TempDir d;
  for (const auto& c : cases) {
    json j = base;
    c.mutate(j);
    write_text(d / "tokenizer.json", j.dump());
    expect_one_line_error(Tokenizer::load(d.path()), d / "tokenizer.json", c.what);
  }
  // A nesting bomb in a component is refused, not recursed into.
  json j = base, deep = {{"type", "NFC"}};
  for (int i = 0; i < 50; ++i) deep = {{"type", "Sequence"}, {"normalizers", {deep}}};
  j["normalizer"] = deep;
  write_text(d / "tokenizer.json", j.dump());
  expect_one_line_error(Tokenizer::load(d.path()), d / "tokenizer.json", "nested");
}

TEST(TokenizerHostile, BadTokenizerConfig) {
  TempDir d;
  write_text(d / "tokenizer.json", read_text(stories_hf() + "/tokenizer.json"));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"eos_token": "<nope>"})", "eos_token"},
      {R"({"bos_token": 5})", "bos_token"},
      {R"({"bos_token": {"content": 5}})", "bos_token"},
      {R"({"add_bos_token": "true"})", "add_bos_token"},
      {R"({"chat_template": 12})", "chat_template"},
      {R"([1, 2])", "expected a JSON object"},
  };
  for (const auto& [cfg, what] : cases) {
    write_text(d / "tokenizer_config.json", cfg);
    expect_one_line_error(Tokenizer::load(d.path()), d / "tokenizer_config.json", what);
  }
}

// Random byte damage to a real file: every outcome is a value (ok or a one-line error).
TEST(TokenizerHostile, RandomDamageNeverCrashes) {
  const std::string full = read_text(stories_hf() + "/tokenizer.json");
  std::mt19937 rng(12345);
  TempDir d;
  int loaded = 0;
  for (int k = 0; k < 150; ++k) {
    std::string s = full;
    int edits = 1 + int(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t pos = rng() % s.size();
      const char pool[] = "{}[]\",:0123456789-e.\\ \xff\x80tnf";
      s[pos] = pool[rng() % (sizeof pool - 1)];
    }
    write_text(d / "tokenizer.json", s);
    auto r = Tokenizer::load(d.path());
    if (!r.ok()) {
      EXPECT_EQ(r.error().message.find('\n'), std::string::npos) << r.error().message;
      continue;
    }
    ++loaded;
    auto ids = r->encode("Once upon a time \xE4\xBD\xA0 <s> \xFF");
    for (int32_t id : ids) EXPECT_TRUE(id >= 0 && id < r->vocab_size());
    (void)r->decode(ids);
  }
  RecordProperty("loaded_after_damage", loaded);
}

TEST(TokenizerHostile, DecodeSkipsIdsOutsideTheVocabulary) {
  auto t = Tokenizer::load(stories_hf());
  ASSERT_TRUE(t.ok());
  std::vector<int32_t> ids{-2147483647 - 1, 403, 512, 2147483647, 407, -1};
  EXPECT_EQ(t->decode(ids), t->decode(std::vector<int32_t>{403, 407}));
  StreamDecoder sd(*t);
  std::string s;
  for (int32_t id : ids) s += sd.push(id);
  EXPECT_EQ(s + sd.flush(), t->decode(ids));
}

// A tokenizer directory with extra added tokens and the given chat_template (stories260K base).
std::string make_chat_dir(const TempDir& d, const std::vector<std::string>& extra,
                          const std::string& bos, const std::string& tmpl) {
  json j = read_json(stories_hf() + "/tokenizer.json");
  int id = 512;
  for (const auto& t : extra)
    j["added_tokens"].push_back({{"id", id++},
                                 {"content", t},
                                 {"single_word", false},
                                 {"lstrip", false},
                                 {"rstrip", false},
                                 {"normalized", false},
                                 {"special", true}});
  // The post-processor adds BOS, as in real Llama files (Llama 3 has no add_bos_token).
  int bos_id = 1;
  for (const auto& a : j["added_tokens"])
    if (a["content"] == bos) bos_id = a["id"];
  j["post_processor"]["single"][0]["SpecialToken"]["id"] = bos;
  j["post_processor"]["special_tokens"] = {
      {bos, {{"id", bos}, {"ids", {bos_id}}, {"tokens", {bos}}}}};
  write_text(d / "tokenizer.json", j.dump());
  json cfg = {{"bos_token", bos}, {"eos_token", "</s>"}, {"chat_template", tmpl}};
  write_text(d / "tokenizer_config.json", cfg.dump());
  return d.path();
}

// Meta-Llama-3-8B-Instruct's template; expected text written from the template by hand.
TEST(TokenizerChat, Llama3Format) {
  const std::string tmpl =
      "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
      "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | "
      "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% "
      "endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
      "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
  TempDir d;
  auto t = Tokenizer::load(make_chat_dir(
      d, {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"},
      "<|begin_of_text|>", tmpl));
  ASSERT_TRUE(t.ok()) << t.error().message;
  std::vector<ChatMessage> msgs{{"system", "  Be brief.\n"}, {"user", "Hi"}};
  auto text = t->render_chat(msgs, ChatOptions{});
  ASSERT_TRUE(text.ok()) << text.error().message;
  EXPECT_EQ(*text,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  // The rendered text carries BOS; encode_prompt must not add a second one.
  auto ids = t->encode_prompt(*text);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 512);
  EXPECT_NE(ids[1], 512);
  EXPECT_EQ(ids[1], 513);
}

// Qwen2's template has a default system prompt; expected text written from the template by hand.
TEST(TokenizerChat, Qwen2ChatMLWithDefaultSystem) {
  const std::string tmpl =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
      "'<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif "
      "%}{{'<|im_start|>"
      "' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if "
      "add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  TempDir d;
  auto t = Tokenizer::load(make_chat_dir(d, {"<|im_start|>", "<|im_end|>"}, "<s>", tmpl));
  ASSERT_TRUE(t.ok()) << t.error().message;
  std::vector<ChatMessage> msgs{{"user", "Hi"}};
  ChatOptions opt;
  opt.enable_thinking = false;  // no effect without a think block in the template
  auto text = t->render_chat(msgs, opt);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  std::vector<ChatMessage> with_sys{{"system", "S"}, {"user", "Hi"}};
  EXPECT_EQ(*t->render_chat(with_sys, ChatOptions{}),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(TokenizerChat, UnknownTemplateIsAnError) {
  TempDir d;
  auto t = Tokenizer::load(make_chat_dir(d, {}, "<s>", "{{ messages[0]['content'] }} [INST]"));
  ASSERT_TRUE(t.ok());
  std::vector<ChatMessage> msgs{{"user", "Hi"}};
  auto r = t->render_chat(msgs, ChatOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("tokenizer_config.json: chat_template is not a format "
                                   "fusecheck renders (ChatML, Llama 3)"),
            std::string::npos)
      << r.error().message;
}

TEST(TokenizerCli, EncodeDecodeAndErrors) {
  const std::string dir = stories_hf();
  json e = read_json(data_dir() + "/stories260K/expected.json");
  auto want = e["cases"][0]["prompt_token_ids"].get<std::vector<int32_t>>();
  std::string want_line;
  for (size_t i = 0; i < want.size(); ++i) want_line += (i ? " " : "") + std::to_string(want[i]);

  auto r = run_cli("tokenize '" + dir + "' --text 'Once upon a time' --add-special");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, want_line + "\n");
  r = run_cli("tokenize '" + dir + "' --text 'Once upon a time' --json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["ids"], json(std::vector<int32_t>(want.begin() + 1, want.end())));
  EXPECT_EQ(j["text"], "Once upon a time");

  TempDir d;
  write_text(d / "prompt.txt", "Once upon a time");
  r = run_cli("tokenize '" + dir + "' --file '" + (d / "prompt.txt") + "' --add-special");
  EXPECT_EQ(r.out, want_line + "\n");

  std::string csv;
  for (size_t i = 0; i < want.size(); ++i) csv += (i ? "," : "") + std::to_string(want[i]);
  r = run_cli("tokenize '" + dir + "' --decode " + csv + " --skip-special");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Once upon a time\n");

  // Usage errors exit 64; unusable inputs exit 3 with one line naming the file.
  EXPECT_EQ(run_cli("tokenize '" + dir + "'").exit_code, 64);
  EXPECT_EQ(run_cli("tokenize '" + dir + "' --text a --decode 1").exit_code, 64);
  EXPECT_EQ(run_cli("tokenize '" + dir + "' --decode 1,x").exit_code, 64);
  EXPECT_EQ(run_cli("tokenize '" + dir + "' --text a --no-thinking").exit_code, 64);
  r = run_cli("tokenize '" + dir + "' --decode 1,99999");
  EXPECT_EQ(r.exit_code, 3);
  r = run_cli("tokenize '" + (d / "missing") + "' --text a");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("missing/tokenizer.json"), std::string::npos) << r.err;
  write_text(d / "chat.json", R"([{"role": "user", "content": "hi"}])");
  r = run_cli("tokenize '" + dir + "' --chat '" + (d / "chat.json") + "'");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("chat_template"), std::string::npos) << r.err;
}

TEST(TokenizerCli, Qwen3ChatMatchesTransformers) {
  FC_REQUIRE_ORACLE();
  json o = read_json(data_dir() + "/tokenizer/qwen3.json");
  TempDir d;
  for (const auto& c : o["chat"]) {
    write_text(d / "chat.json", c["messages"].dump());
    std::string flags = c["enable_thinking"].get<bool>() ? " --json" : " --json --no-thinking";
    auto r =
        run_cli("tokenize '" + qwen3_model_dir() + "' --chat '" + (d / "chat.json") + "'" + flags);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    json j = json::parse(r.out);
    EXPECT_EQ(j["text"], c["text"]);
    EXPECT_EQ(j["ids"], c["ids"]);
  }
  write_text(d / "bad.json", R"({"role": "user"})");
  auto r = run_cli("tokenize '" + qwen3_model_dir() + "' --chat '" + (d / "bad.json") + "'");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("bad.json"), std::string::npos);
}

}  // namespace
}  // namespace fusecheck
