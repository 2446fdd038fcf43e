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

int run_generate(const GenerateArgs& a) {
  auto fail = [](const Error& e) {
    std::fprintf(stderr, "fusecheck generate: %s\n", e.message.c_str());
    return kExitInputError;
  };
  auto engine = load_engine(a.engine);
  if (!engine.ok()) return fail(engine.error());
  const Model& model = engine->model;
  auto defaults = read_generation_defaults(a.engine.model_dir);
  if (!defaults.ok()) return fail(defaults.error());

  // The tokenizer is optional with --token-ids (output is then ids), required with --prompt.
  std::optional<Tokenizer> tok;
  if (!a.prompt.empty() || std::ifstream(a.engine.model_dir + "/tokenizer.json").good()) {
    auto t = load_tokenizer_for(a.engine.model_dir);
    if (!t.ok()) return fail(t.error());
    tok = std::move(*t);
  }
  std::vector<int32_t> prompt;
  if (!a.token_ids.empty()) {
    auto ids = parse_token_ids(a.token_ids);
    if (!ids.ok()) return fail(ids.error());
    prompt = std::move(*ids);
  } else if (a.chat) {
    ChatMessage msg{"user", a.prompt};
    auto text = tok->render_chat({&msg, 1}, ChatOptions{true, !a.no_thinking});
    if (!text.ok()) return fail(text.error());
    prompt = tok->encode(*text);
  } else {
    prompt = tok->encode_prompt(a.prompt);
  }
  if (prompt.empty()) return fail(Error{"the prompt encodes to no tokens"});

  std::vector<int32_t> stops = defaults->eos_ids;
  if (tok)
    for (int32_t id : tok->eos_ids())
      if (std::find(stops.begin(), stops.end(), id) == stops.end()) stops.push_back(id);

  Session session(model, engine->precision, engine->max_context, &engine->kernels.plan);
  GenerationStats stats;
  Status fed = session.feed(prompt, &stats);
  if (!fed.ok()) return fail(fed.error());
  Sampler sampler(resolve_sampling(a.sampling, *defaults));

  std::optional<StreamDecoder> stream;
  if (!a.json) {
    if (tok) {
      std::fputs(tok->decode(prompt, true).c_str(), stdout);
      stream.emplace(*tok, true);
    } else {
      for (int32_t id : prompt) std::printf("%d ", id);
    }
    std::fflush(stdout);
  }
  auto on_token = [&](int32_t id) {
    if (a.json) return true;
    if (stream) {
      // Decode in the prompt's context so a leading-space rule applies only to the sequence start.
      std::fputs(stream->push(id).c_str(), stdout);
    } else {
      std::printf("%d ", id);
    }
    std::fflush(stdout);
    return true;
  };
  if (stream)  // prime the stream with the prompt, discarding its text (already printed)
    for (int32_t id : prompt) stream->push(id);
  auto out = session.generate(a.max_tokens, sampler, stops, on_token, &stats);
  if (!out.ok()) return fail(out.error());
  if (a.json) {
    nlohmann::json j = {{"prompt_token_ids", prompt},
                        {"token_ids", *out},
                        {"text", tok ? tok->decode(*out, true) : std::string()}};
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    if (stream) std::fputs(stream->flush().c_str(), stdout);
    std::printf("\n");
  }
  std::fflush(stdout);
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
  cmd->add_option("-n,--max-tokens", a->max_tokens, "tokens to generate at most (default 256)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", a->json,
                "print {\"prompt_token_ids\", \"token_ids\", \"text\"} instead of streaming");
  cmd->add_flag("--chat", a->chat, "wrap --prompt in the model's chat template as a user turn");
  cmd->add_flag("--no-thinking", a->no_thinking, "with --chat: Qwen3's enable_thinking=false");
  cmd->callback([a, &exit_code] {
    if (a->prompt.empty() && a->token_ids.empty())
      throw CLI::ValidationError("generate", "give --prompt TEXT or --token-ids 1,2,3");
    if (a->chat && a->prompt.empty())
      throw CLI::ValidationError("generate", "--chat needs --prompt");
    exit_code = run_generate(*a);
  });
}

}  // namespace fusecheck::cli
