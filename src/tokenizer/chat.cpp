// Chat formats. No C++ Jinja engine is packaged in Debian, so the format is recognised from the
// chat_template text and rendered by code that reproduces the template's output exactly:
//   - Qwen3 ChatML (template mentions <think>): reasoning of earlier assistant turns dropped,
//     enable_thinking = false adds an empty think block after the generation prompt;
//   - plain ChatML (Qwen2/Qwen2.5), with the template's default system prompt if it has one;
//   - Llama 3 (<|start_header_id|>), with 3.1+'s "Cutting Knowledge Date" system header.
// Tool calls and tool definitions are not rendered.
#include <ctime>

#include "tokenizer/tokenizer_impl.h"

namespace fusecheck {

namespace {

bool contains(std::string_view s, std::string_view what) {
  return s.find(what) != std::string_view::npos;
}
bool starts_with(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}
bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

std::string strip_chars(std::string_view s, std::string_view chars, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left)
    while (b < e && contains(chars, s.substr(b, 1))) ++b;
  if (right)
    while (e > b && contains(chars, s.substr(e - 1, 1))) --e;
  return std::string(s.substr(b, e - b));
}
constexpr std::string_view kNewline = "\n";
constexpr std::string_view kSpaces = " \t\n\r\v\f";  // Jinja's trim, for ASCII whitespace

// Python's s.split(sep)[0] and s.split(sep)[-1].
std::string_view first_part(std::string_view s, std::string_view sep) {
  size_t p = s.find(sep);
  return p == std::string_view::npos ? s : s.substr(0, p);
}
std::string_view last_part(std::string_view s, std::string_view sep) {
  size_t p = s.rfind(sep);
  return p == std::string_view::npos ? s : s.substr(p + sep.size());
}

// The default system prompt of a ChatML template: a literal
// '<|im_start|>system\n...<|im_end|>\n' with no expression inside.
std::string find_default_system(const std::string& tmpl) {
  const std::string open = "<|im_start|>system\\n", close = "<|im_end|>";
  for (size_t p = tmpl.find(open); p != std::string::npos; p = tmpl.find(open, p + 1)) {
    size_t b = p + open.size(), e = tmpl.find(close, b);
    if (e == std::string::npos) break;
    std::string lit = tmpl.substr(b, e - b);
    if (lit.find_first_of("'\"+{}") != std::string::npos) continue;  // an expression, not a literal
    std::string out;
    for (size_t i = 0; i < lit.size(); ++i) {
      if (lit[i] == '\\' && i + 1 < lit.size()) {
        char c = lit[++i];
        out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
      } else {
        out += lit[i];
      }
    }
    return out;
  }
  return {};
}

bool is_tool_response(std::string_view c) {
  return starts_with(c, "<tool_response>") && ends_with(c, "</tool_response>");
}

std::string render_qwen3(std::span<const ChatMessage> m, const ChatOptions& opt) {
  std::string out;
  if (!m.empty() && m[0].role == "system")
    out += "<|im_start|>system\n" + m[0].content + "<|im_end|>\n";
  // The last user turn that is not a tool response: reasoning is kept only after it.
  size_t last_query = m.empty() ? 0 : m.size() - 1;
  for (size_t k = m.size(); k-- > 0;)
    if (m[k].role == "user" && !is_tool_response(m[k].content)) {
      last_query = k;
      break;
    }
  for (size_t i = 0; i < m.size(); ++i) {
    const auto& msg = m[i];
    bool last = i + 1 == m.size();
    if (msg.role == "user" || (msg.role == "system" && i != 0)) {
      out += "<|im_start|>" + msg.role + "\n" + msg.content + "<|im_end|>\n";
    } else if (msg.role == "assistant") {
      std::string content = msg.content, reasoning;
      if (contains(msg.content, "</think>")) {
        content = strip_chars(last_part(msg.content, "</think>"), kNewline, true, false);
        std::string before =
            strip_chars(first_part(msg.content, "</think>"), kNewline, false, true);
        reasoning = strip_chars(last_part(before, "<think>"), kNewline, true, false);
      }
      if (i > last_query && (last || !reasoning.empty())) {
        out += "<|im_start|>assistant\n<think>\n" + strip_chars(reasoning, kNewline, true, true) +
               "\n</think>\n\n" + strip_chars(content, kNewline, true, false);
      } else {
        out += "<|im_start|>assistant\n" + content;
      }
      out += "<|im_end|>\n";
    } else if (msg.role == "tool") {
      if (i == 0 || m[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + msg.content + "\n</tool_response>";
      if (last || m[i + 1].role != "tool") out += "<|im_end|>\n";
    }
    // Other roles are not rendered by the template either.
  }
  if (opt.add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (!opt.enable_thinking) out += "<think>\n\n</think>\n\n";
  }
  return out;
}

std::string render_chatml(const TokenizerImpl& t, std::span<const ChatMessage> m,
                          const ChatOptions& opt) {
  std::string out;
  if (!t.default_system.empty() && (m.empty() || m[0].role != "system"))
    out += "<|im_start|>system\n" + t.default_system + "<|im_end|>\n";
  for (const auto& msg : m) out += "<|im_start|>" + msg.role + "\n" + msg.content + "<|im_end|>\n";
  if (opt.add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

std::string render_llama3(const TokenizerImpl& t, std::span<const ChatMessage> m,
                          const ChatOptions& opt) {
  auto turn = [](const std::string& role, std::string_view content) {
    return "<|start_header_id|>" + role + "<|end_header_id|>\n\n" +
           strip_chars(content, kSpaces, true, true) + "<|eot_id|>";
  };
  std::string out = t.bos_text;
  size_t first = 0;
  if (!t.llama_date.empty()) {
    // 3.1+: the system turn always comes first, with the knowledge and today's dates.
    std::string system;
    if (!m.empty() && m[0].role == "system") system = m[0].content, first = 1;
    out +=
        "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
        "Today Date: " +
        t.llama_date + "\n\n" + strip_chars(system, kSpaces, true, true) + "<|eot_id|>";
  }
  for (size_t i = first; i < m.size(); ++i) out += turn(m[i].role, m[i].content);
  if (opt.add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

}  // namespace

void detect_chat_format(const std::string& tmpl, TokenizerImpl& t) {
  if (tmpl.empty()) {
    t.chat = ChatFormat::kNone;
  } else if (contains(tmpl, "<|im_start|>")) {
    t.chat = contains(tmpl, "<think>") ? ChatFormat::kQwen3 : ChatFormat::kChatML;
    if (t.chat == ChatFormat::kChatML) t.default_system = find_default_system(tmpl);
  } else if (contains(tmpl, "<|start_header_id|>")) {
    t.chat = ChatFormat::kLlama3;
    if (t.bos_text.empty()) t.bos_text = "<|begin_of_text|>";
    if (contains(tmpl, "Cutting Knowledge Date")) {
      t.llama_date = "26 Jul 2024";  // 3.1's fixed default
      if (contains(tmpl, "strftime_now")) {
        // 3.2+ asks transformers for today's date, as strftime("%d %b %Y").
        std::time_t now = std::time(nullptr);
        std::tm tm{};
        char buf[32];
        if (localtime_r(&now, &tm) && std::strftime(buf, sizeof buf, "%d %b %Y", &tm))
          t.llama_date = buf;
      }
    }
  } else {
    t.chat = ChatFormat::kUnknown;
  }
}

Result<std::string> render_chat(const TokenizerImpl& t, std::span<const ChatMessage> msgs,
                                const ChatOptions& opt) {
  switch (t.chat) {
    case ChatFormat::kQwen3:
      return render_qwen3(msgs, opt);
    case ChatFormat::kChatML:
      return render_chatml(t, msgs, opt);
    case ChatFormat::kLlama3:
      return render_llama3(t, msgs, opt);
    case ChatFormat::kNone:
      if (t.config_path.empty())
        return make_error(
            "{}: expected a tokenizer_config.json with a chat_template beside it, "
            "found none; hint: this model has no chat format, use plain prompts",
            t.json_path);
      return make_error(
          "{}: expected a chat_template, found none; hint: this model has no chat "
          "format, use plain prompts",
          t.config_path);
    case ChatFormat::kUnknown:
      break;
  }
  return make_error(
      "{}: chat_template is not a format fusecheck renders (ChatML, Llama 3); hint: "
      "render the prompt yourself and pass it to encode()",
      t.config_path);
}

}  // namespace fusecheck
