// `fusecheck chat MODEL`: multi-turn chat through the model's own chat template. One line of input
// is one user turn; /help, /reset and /exit are handled here, never sent to the model. On a
// terminal the line is read with libedit (editing, history), Ctrl-C stops the reply being written
// and keeps the conversation, and Ctrl-D ends the chat. From a pipe there is no prompt, and a turn
// that fails ends the chat with exit 3. Each turn re-renders the conversation and the session
// reuses the cached prefix, so only the new turn is prefilled.
#include <editline/readline.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
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

constexpr const char* kHelp =
    "commands: /help this list, /reset start a new conversation, /exit (or Ctrl-D) quit; on a "
    "terminal Ctrl-C stops the reply being written";

// Set by SIGINT while a reply is generated; the token callback polls it. A signal handler can
// only talk to the program through a flag like this.
volatile std::sig_atomic_t g_stop_reply = 0;
extern "C" void on_sigint(int) {
  g_stop_reply = 1;
}

// Catches Ctrl-C for the lifetime of one reply; outside a reply it ends the program as usual.
class ReplyInterrupt {
 public:
  explicit ReplyInterrupt(bool on) : on_(on) {
    if (!on_) return;
    g_stop_reply = 0;
    struct sigaction sa = {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_);
  }
  ~ReplyInterrupt() {
    if (on_) sigaction(SIGINT, &old_, nullptr);
  }
  bool stopped() const { return on_ && g_stop_reply; }

 private:
  bool on_;
  struct sigaction old_ = {};
};

// One line of input: libedit on a terminal (with history), std::getline from a pipe. nullopt at
// the end of input.
class LineReader {
 public:
  explicit LineReader(bool tty) : tty_(tty) {
    if (tty_) rl_initialize(), using_history();
  }
  std::optional<std::string> next() {
    if (!tty_) {
      std::string line;
      if (!std::getline(std::cin, line)) return std::nullopt;
      return line;
    }
    char* raw = readline("> ");
    if (!raw) {
      std::fputs("\n", stdout);  // Ctrl-D: end the prompt's line
      return std::nullopt;
    }
    std::string line(raw);
    std::free(raw);
    if (!line.empty()) add_history(line.c_str());
    return line;
  }

 private:
  bool tty_;
};

struct ChatState {
  const ChatArgs& a;
  Tokenizer& tok;
  Session& session;
  Sampler& sampler;
  std::vector<int32_t> stops;
  std::vector<ChatMessage> history;
  bool tty;
};

// One user turn: the reply streamed to stdout and added to the history. Errors leave the history
// as it was before the turn.
Status run_turn(ChatState& s, const std::string& line) {
  s.history.push_back({"user", line});
  auto fail = [&](const Error& e) {
    s.history.pop_back();
    return Status(e);
  };
  auto text = s.tok.render_chat(s.history, ChatOptions{true, !s.a.no_thinking});
  if (!text.ok()) return fail(text.error());
  // From here Ctrl-C stops this turn's reply (a Ctrl-C during the prefill stops it at once).
  ReplyInterrupt interrupt(s.tty);
  GenerationStats stats;
  if (Status st = s.session.feed(s.tok.encode(*text), &stats); !st.ok()) return fail(st.error());
  StreamDecoder stream(s.tok, true);
  std::string reply;
  bool write_failed = false;
  auto on_token = [&](int32_t id) {
    std::string piece = stream.push(id);
    reply += piece;
    std::fputs(piece.c_str(), stdout);
    if (!stdout_ok()) write_failed = true;
    return !write_failed && !interrupt.stopped();
  };
  auto out = s.session.generate(s.a.max_tokens, s.sampler, s.stops, on_token, &stats);
  if (!out.ok()) return fail(out.error());
  std::string tail = stream.flush();
  reply += tail;
  std::printf("%s\n", tail.c_str());
  if (write_failed || !stdout_ok()) return fail(Error{"cannot write the reply to standard output"});
  if (interrupt.stopped()) std::fputs("(reply stopped)\n", stdout);
  s.history.push_back({"assistant", reply});
  if (stats.context_full)
    note(fmt::format("the reply stopped: the context is full ({} tokens); /reset starts over",
                     s.session.cache().max_context()));
  if (!s.a.quiet) print_stats(stats);
  return ok_status();
}

int run_chat(const ChatArgs& a) {
  auto tok = load_tokenizer_for(a.engine.model_dir);
  if (!tok.ok()) return input_error(tok.error());
  // Fail before loading weights when the chat format is not one we render.
  ChatMessage probe{"user", "hi"};
  if (auto r = tok->render_chat({&probe, 1}, {}); !r.ok()) return input_error(r.error());
  auto engine = load_engine(a.engine);
  if (!engine.ok()) return input_error(engine.error());
  if (Status st = check_tokenizer_fits(*tok, engine->model, a.engine.model_dir); !st.ok())
    return input_error(st.error());
  auto defaults = read_generation_defaults(a.engine.model_dir);
  if (!defaults.ok()) return input_error(defaults.error());

  Session session(engine->model, engine->precision, engine->max_context, &engine->kernels.plan);
  Sampler sampler(resolve_sampling(a.sampling, *defaults));
  ChatState s{a, *tok, session, sampler, defaults->eos_ids, {}, bool(isatty(STDIN_FILENO))};
  for (int32_t id : tok->eos_ids())
    if (std::find(s.stops.begin(), s.stops.end(), id) == s.stops.end()) s.stops.push_back(id);
  if (!a.system.empty()) s.history.push_back({"system", a.system});
  const std::vector<ChatMessage> initial = s.history;
  LineReader reader(s.tty);
  while (auto line = reader.next()) {
    if (*line == "/exit" || *line == "/quit") break;
    if (*line == "/help") {
      std::puts(kHelp);
      continue;
    }
    if (*line == "/reset") {
      s.history = initial;
      session.reset();
      if (s.tty) std::puts("(conversation reset)");
      continue;
    }
    if (line->empty()) continue;
    if (Status st = run_turn(s, *line); !st.ok()) {
      // On a terminal the conversation goes on; from a pipe the script's turns no longer line
      // up, so the chat ends with the input error code.
      if (!s.tty) return input_error(st.error());
      fail(kExitInputError, st.error().message + "; /reset starts a new conversation");
    }
  }
  return 0;
}

}  // namespace

void register_chat_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<ChatArgs>();
  CLI::App* cmd = app.add_subcommand("chat", "Interactive multi-turn chat (/help, /reset, /exit)");
  add_engine_options(cmd, a->engine);
  add_sampling_options(cmd, a->sampling);
  cmd->add_option("--system", a->system, "system message");
  cmd->add_option("-n,--max-tokens", a->max_tokens, "tokens per reply at most (default 1024)")
      ->check(positive_int());
  cmd->add_flag("--no-thinking", a->no_thinking, "Qwen3: enable_thinking=false");
  cmd->add_flag("--quiet", a->quiet, "no speed line after each reply");
  cmd->callback([a, &exit_code] {
    check_engine_flags(a->engine);
    exit_code = run_chat(*a);
  });
}

}  // namespace fusecheck::cli
