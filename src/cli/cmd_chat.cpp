// `fusecheck chat MODEL`: interactive multi-turn chat through the model's own chat template. One
// line of input is one user turn; /reset starts over, /exit (or end of input) quits. Works from a
// pipe: the "> " prompt is shown only on a terminal. Each turn re-renders the conversation and the
// session reuses the cached prefix, so only the new turn is prefilled.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/engine_cli.h"

namespace fusecheck::cli {

namespace {

struct ChatArgs {
  EngineArgs engine;
  SamplingArgs sampling;
  std::string system;
  int64_t max_tokens = 1024;
  bool no_thinking = false, quiet = false;
};

int run_chat(const ChatArgs& a) {
  auto fail = [](const Error& e) {
    std::fprintf(stderr, "fusecheck chat: %s\n", e.message.c_str());
    return kExitInputError;
  };
  auto tok = load_tokenizer_for(a.engine.model_dir);
  if (!tok.ok()) return fail(tok.error());
  // Fail before loading weights when the chat format is not one we render.
  ChatMessage probe{"user", "hi"};
  if (auto r = tok->render_chat({&probe, 1}, {}); !r.ok()) return fail(r.error());
  auto engine = load_engine(a.engine);
  if (!engine.ok()) return fail(engine.error());
  auto defaults = read_generation_defaults(a.engine.model_dir);
  if (!defaults.ok()) return fail(defaults.error());
  std::vector<int32_t> stops = defaults->eos_ids;
  for (int32_t id : tok->eos_ids())
    if (std::find(stops.begin(), stops.end(), id) == stops.end()) stops.push_back(id);

  Session session(engine->model, engine->precision, engine->max_context, &engine->kernels.plan);
  Sampler sampler(resolve_sampling(a.sampling, *defaults));
  std::vector<ChatMessage> history;
  if (!a.system.empty()) history.push_back({"system", a.system});
  const std::vector<ChatMessage> initial = history;
  const bool tty = isatty(STDIN_FILENO);
  std::string line;
  while (true) {
    if (tty) std::fputs("> ", stdout), std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      history = initial;
      session.reset();
      if (tty) std::puts("(conversation reset)");
      continue;
    }
    if (line.empty()) continue;
    history.push_back({"user", line});
    auto text = tok->render_chat(history, ChatOptions{true, !a.no_thinking});
    if (!text.ok()) return fail(text.error());
    GenerationStats stats;
    if (Status s = session.feed(tok->encode(*text), &stats); !s.ok()) {
      // A full context ends this conversation, not the program.
      std::fprintf(stderr, "fusecheck chat: %s; use /reset\n", s.error().message.c_str());
      history.pop_back();
      continue;
    }
    StreamDecoder stream(*tok, true);
    std::string reply;
    auto on_token = [&](int32_t id) {
      std::string piece = stream.push(id);
      reply += piece;
      std::fputs(piece.c_str(), stdout);
      std::fflush(stdout);
      return true;
    };
    auto out = session.generate(a.max_tokens, sampler, stops, on_token, &stats);
    if (!out.ok()) return fail(out.error());
    std::string tail = stream.flush();
    reply += tail;
    std::printf("%s\n", tail.c_str());
    history.push_back({"assistant", reply});
    if (!a.quiet) print_stats(stats);
  }
  return 0;
}

}  // namespace

void register_chat_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<ChatArgs>();
  CLI::App* cmd = app.add_subcommand("chat", "Interactive multi-turn chat (/reset, /exit)");
  add_engine_options(cmd, a->engine);
  add_sampling_options(cmd, a->sampling);
  cmd->add_option("--system", a->system, "system message");
  cmd->add_option("-n,--max-tokens", a->max_tokens, "tokens per reply at most (default 1024)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--no-thinking", a->no_thinking, "Qwen3: enable_thinking=false");
  cmd->add_flag("--quiet", a->quiet, "no speed line after each reply");
  cmd->callback([a, &exit_code] { exit_code = run_chat(*a); });
}

}  // namespace fusecheck::cli
