// `fusecheck generate MODEL (--prompt TEXT | --token-ids 1,2,3)`: streams a continuation to
// stdout (the prompt is echoed first, as llama2.c does), or prints one JSON object with --json.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/engine_cli.h"

namespace fusecheck::cli {

namespace {

struct GenerateArgs {
  EngineArgs engine;
  SamplingArgs sampling;
  std::string prompt, token_ids;
  int64_t max_tokens = 256;
  bool json = false, chat = false, no_thinking = false;
};

// The tokenizer: required with --prompt; with --token-ids it only turns the output into text, so
// a broken one is a note and the output stays ids.
Result<std::optional<Tokenizer>> tokenizer_for(const GenerateArgs& a, const Model& model) {
  const std::string& dir = a.engine.model_dir;
  std::optional<Tokenizer> tok;
  if (!a.prompt.empty()) {
    FC_ASSIGN(t, load_tokenizer_for(dir));
    tok = std::move(t);
  } else if (std::ifstream(dir + "/tokenizer.json").good()) {
    auto t = load_tokenizer_for(dir);
    if (!t.ok()) {
      note("printing token ids: " + t.error().message);
      return tok;
    }
    tok = std::move(*t);
  }
  if (tok) FC_TRY(check_tokenizer_fits(*tok, model, dir));
  return tok;
}

Result<std::vector<int32_t>> prompt_ids(const GenerateArgs& a, const std::optional<Tokenizer>& tok,
                                        std::vector<int32_t> ids) {
  if (!ids.empty()) return ids;
  if (a.chat) {
    ChatMessage msg{"user", a.prompt};
    FC_ASSIGN(text, tok->render_chat({&msg, 1}, ChatOptions{true, !a.no_thinking}));
    ids = tok->encode(text);
  } else {
    ids = tok->encode_prompt(a.prompt);
  }
  if (ids.empty()) return make_error("the prompt encodes to no tokens");
  return ids;
}

int run_generate(const GenerateArgs& a, std::vector<int32_t> given_ids) {
  auto engine = load_engine(a.engine);
  if (!engine.ok()) return input_error(engine.error());
  const Model& model = engine->model;
  auto defaults = read_generation_defaults(a.engine.model_dir);
  if (!defaults.ok()) return input_error(defaults.error());
  auto tok_r = tokenizer_for(a, model);
  if (!tok_r.ok()) return input_error(tok_r.error());
  const std::optional<Tokenizer>& tok = *tok_r;
  auto prompt_r = prompt_ids(a, tok, std::move(given_ids));
  if (!prompt_r.ok()) return input_error(prompt_r.error());
  const std::vector<int32_t>& prompt = *prompt_r;
  if (Status st = check_ids_fit(prompt, model); !st.ok()) return input_error(st.error());

  std::vector<int32_t> stops = defaults->eos_ids;
  if (tok)
    for (int32_t id : tok->eos_ids())
      if (std::find(stops.begin(), stops.end(), id) == stops.end()) stops.push_back(id);

  Session session(model, engine->precision, engine->max_context, &engine->kernels.plan);
  GenerationStats stats;
  // A prompt longer than the context fails here, before anything is printed.
  Status fed = session.feed(prompt, &stats);
  if (!fed.ok()) return input_error(fed.error());
  Sampler sampler(resolve_sampling(a.sampling, *defaults));

  std::optional<StreamDecoder> stream;
  if (!a.json) {
    if (tok) {
      std::fputs(tok->decode(prompt, true).c_str(), stdout);
      stream.emplace(*tok, true);
    } else {
      for (int32_t id : prompt) std::printf("%d ", id);
    }
  }
  // Each token is printed as it comes; a stdout that stops taking output stops generation.
  auto on_token = [&](int32_t id) {
    if (a.json) return true;
    if (stream) {
      // Decode in the prompt's context so a leading-space rule applies only to the sequence start.
      std::fputs(stream->push(id).c_str(), stdout);
    } else {
      std::printf("%d ", id);
    }
    return stdout_ok();
  };
  if (stream)  // prime the stream with the prompt, discarding its text (already printed)
    for (int32_t id : prompt) stream->push(id);
  if (!stdout_ok()) return kExitWriteError;  // main prints the message
  auto out = session.generate(a.max_tokens, sampler, stops, on_token, &stats);
  if (!out.ok()) return input_error(out.error());
  if (a.json) {
    nlohmann::json j = {{"prompt_token_ids", prompt},
                        {"token_ids", *out},
                        {"text", tok ? tok->decode(*out, true) : std::string()},
                        {"context_full", stats.context_full}};
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    if (stream) std::fputs(stream->flush().c_str(), stdout);
    std::printf("\n");
  }
  if (!stdout_ok()) return kExitWriteError;
  if (stats.context_full)
    note(fmt::format("stopped after {} tokens: the context is full ({} tokens; --max-context)",
                     out->size(), engine->max_context));
  print_stats(stats);
  return 0;
}

}  // namespace

void register_generate_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate a continuation with the engine");
  add_engine_options(cmd, a->engine);
  add_sampling_options(cmd, a->sampling);
  auto* p = cmd->add_option("--prompt", a->prompt, "prompt text (needs the model's tokenizer)");
  auto* t = cmd->add_option("--token-ids", a->token_ids, "prompt as token ids: 1,2,3");
  p->excludes(t);
  cmd->add_option("-n,--max-tokens", a->max_tokens,
                  "tokens to generate at most (default 256); generation also stops, with a note, "
                  "when the context is full")
      ->check(non_negative_int());
  cmd->add_flag("--json", a->json,
                "print {\"prompt_token_ids\", \"token_ids\", \"text\"} instead of streaming");
  cmd->add_flag("--chat", a->chat, "wrap --prompt in the model's chat template as a user turn");
  cmd->add_flag("--no-thinking", a->no_thinking, "with --chat: Qwen3's enable_thinking=false");
  cmd->callback([a, &exit_code] {
    if (a->prompt.empty() && a->token_ids.empty())
      usage_error("give --prompt TEXT or --token-ids 1,2,3");
    if (a->chat && a->prompt.empty()) usage_error("--chat needs --prompt");
    if (a->no_thinking && !a->chat) usage_error("--no-thinking goes with --chat");
    check_engine_flags(a->engine);
    std::vector<int32_t> ids;
    if (!a->token_ids.empty()) {
      auto r = parse_token_ids(a->token_ids);
      if (!r.ok()) usage_error(r.error().message);
      ids = std::move(*r);
    }
    exit_code = run_generate(*a, std::move(ids));
  });
}

}  // namespace fusecheck::cli
