// `fusecheck tokenize`: CLI glue over the tokenizer (src/tokenizer). Encodes text, decodes ids, or
// renders a chat through the model's chat format. DIR needs only the tokenizer files.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "tokenizer/tokenizer.h"
#include "util/atomic_file.h"

namespace fusecheck::cli {

namespace {

constexpr size_t kMaxInputFile = size_t(64) << 20;

struct TokenizeArgs {
  std::string dir, text, file, decode, chat;
  bool has_text = false, json = false, no_thinking = false, add_special = false,
       skip_special = false;
};

int usage_error(const std::string& msg) {
  fmt::print(stderr, "fusecheck: error: {}\n", msg);
  return kExitUsage;
}

int input_error(const std::string& msg) {
  fmt::print(stderr, "fusecheck: error: {}\n", msg);
  return kExitInputError;
}

std::string join_ids(const std::vector<int32_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? " " : "") + std::to_string(ids[i]);
  return out;
}

// "1,2,3" (spaces allowed) -> ids; nullopt names the bad item in `bad`.
std::optional<std::vector<int32_t>> parse_ids(const std::string& s, std::string& bad) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    std::string item = s.substr(start, comma == std::string::npos ? comma : comma - start);
    start = comma == std::string::npos ? s.size() + 1 : comma + 1;
    size_t b = item.find_first_not_of(' '), e = item.find_last_not_of(' ');
    if (b == std::string::npos) {
      if (s.find_first_not_of(" ,") == std::string::npos) break;  // empty list
      bad = item;
      return std::nullopt;
    }
    item = item.substr(b, e - b + 1);
    int32_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec != std::errc() || p != item.data() + item.size()) {
      bad = item;
      return std::nullopt;
    }
    ids.push_back(v);
  }
  return ids;
}

// The --chat file: a JSON list of {"role": ..., "content": ...}.
Result<std::vector<ChatMessage>> read_chat(const std::string& path) {
  FC_ASSIGN(text, read_small_file(path, kMaxInputFile));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return make_error(
        "{}: expected JSON (a list of {{\"role\", \"content\"}}), found invalid "
        "JSON",
        path);
  if (!j.is_array())
    return make_error("{}: expected a list of {{\"role\", \"content\"}} messages, found {}", path,
                      j.type_name());
  std::vector<ChatMessage> msgs;
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& m = j[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string())
      return make_error("{}: expected message {} to be {{\"role\": string, \"content\": string}}",
                        path, i);
    msgs.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return msgs;
}

void print_result(bool json, const std::vector<int32_t>& ids, const std::string& text,
                  bool text_first) {
  if (json) {
    nlohmann::json out = {{"ids", ids},
                          {"text", text}};  // decoded text is valid UTF-8; input may not be
    fmt::print("{}\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  } else if (text_first) {
    fmt::print("{}\n{}\n", text, join_ids(ids));
  } else {
    fmt::print("{}\n", join_ids(ids));
  }
}

int run_tokenize(const TokenizeArgs& a) {
  int modes = a.has_text + !a.file.empty() + !a.decode.empty() + !a.chat.empty();
  if (a.dir.empty()) return usage_error("tokenize: DIR (the model's tokenizer files) is required");
  if (modes != 1)
    return usage_error("tokenize: give exactly one of --text, --file, --decode, --chat");
  if (a.no_thinking && a.chat.empty()) return usage_error("--no-thinking goes with --chat");

  std::vector<int32_t> decode_ids;
  if (!a.decode.empty()) {
    std::string bad;
    auto ids = parse_ids(a.decode, bad);
    if (!ids) return usage_error("--decode: \"" + bad + "\" is not a token id (e.g. 1,2,3)");
    decode_ids = std::move(*ids);
  }
  auto tok = Tokenizer::load(a.dir);
  if (!tok.ok()) return input_error(tok.error().message);

  if (!a.decode.empty()) {
    for (int32_t id : decode_ids)
      if (id < 0 || id >= tok->vocab_size())
        return input_error(fmt::format("--decode: id {} is outside the vocabulary (0..{})", id,
                                       tok->vocab_size() - 1));
    std::string text = tok->decode(decode_ids, a.skip_special);
    if (a.json)
      print_result(true, decode_ids, text, true);
    else
      fmt::print("{}\n", text);
    return 0;
  }
  if (!a.chat.empty()) {
    auto msgs = read_chat(a.chat);
    if (!msgs.ok()) return input_error(msgs.error().message);
    ChatOptions opt;
    opt.enable_thinking = !a.no_thinking;
    auto text = tok->render_chat(*msgs, opt);
    if (!text.ok()) return input_error(text.error().message);
    print_result(a.json, tok->encode_prompt(*text), *text, true);
    return 0;
  }
  std::string text = a.text;
  if (!a.file.empty()) {
    auto f = read_small_file(a.file, kMaxInputFile);
    if (!f.ok()) return input_error(f.error().message);
    text = std::move(*f);
  }
  auto ids = a.add_special ? tok->encode_prompt(text) : tok->encode(text);
  print_result(a.json, ids, text, false);
  return 0;
}

}  // namespace

void register_tokenize_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<TokenizeArgs>();
  CLI::App* sub = app.add_subcommand(
      "tokenize", "Encode text, decode ids or render a chat with a model's tokenizer");
  sub->add_option("DIR", a->dir, "Model directory with tokenizer.json (weights not needed)")
      ->type_name("DIR");
  sub->add_option("--text", a->text, "Text to encode")
      ->type_name("TEXT")
      ->each([a](const std::string&) { a->has_text = true; });
  sub->add_option("--file", a->file, "Encode the contents of FILE")->type_name("FILE");
  sub->add_option("--decode", a->decode, "Decode comma-separated ids, e.g. 1,2,3")
      ->type_name("IDS");
  sub->add_option("--chat", a->chat,
                  "Render a JSON list of {role, content} through the chat template, with the "
                  "generation prompt")
      ->type_name("FILE");
  sub->add_flag("--no-thinking", a->no_thinking, "With --chat: enable_thinking=false (Qwen3)");
  sub->add_flag("--add-special", a->add_special,
                "With --text/--file: add what the model expects first (BOS for Llama-2 style)");
  sub->add_flag("--skip-special", a->skip_special, "With --decode: leave out special tokens");
  sub->add_flag("--json", a->json, "Print {\"ids\": [...], \"text\": \"...\"}");
  sub->callback([a, &exit_code] { exit_code = run_tokenize(*a); });
}

}  // namespace fusecheck::cli
