// `fusecheck eval MODEL --token-ids ... --out FILE.safetensors`: the logits at every position as
// tensor `logits` [seq, vocab] f32, and with --hidden the hidden states `hidden.<l>` [seq, dim]
// numbered as transformers numbers them (0 = embeddings, the last after the final norm), so other
// implementations can compare with the engine.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"
#include "cli/engine_cli.h"
#include "io/safetensors_writer.h"

namespace fusecheck::cli {

namespace {

struct EvalArgs {
  EngineArgs engine;
  std::string token_ids, out;
  bool hidden = false;
};

int run_eval(const EvalArgs& a, const std::vector<int32_t>& token_ids) {
  auto fail = [](const Error& e) { return input_error(e); };
  const std::vector<int32_t>* ids = &token_ids;
  auto engine = load_engine(a.engine);
  if (!engine.ok()) return fail(engine.error());
  const Model& m = engine->model;
  if (Status st = check_ids_fit(*ids, m); !st.ok()) return fail(st.error());
  const KernelPlan& plan = engine->kernels.plan;
  KvCache cache = m.new_cache(engine->precision, engine->max_context, &plan);
  std::vector<float> logits;
  ForwardTrace trace;
  Status st = m.forward(*ids, engine->precision, cache, LogitsFor::kAll, logits,
                        a.hidden ? &trace : nullptr, &plan);
  if (!st.ok()) return fail(st.error());
  const uint64_t seq = ids->size();
  std::vector<F32Tensor> tensors;
  tensors.push_back({"logits", {seq, uint64_t(m.config().vocab_size)}, logits});
  for (size_t l = 0; l < trace.hidden.size(); ++l)
    tensors.push_back(
        {"hidden." + std::to_string(l), {seq, uint64_t(m.config().hidden_size)}, trace.hidden[l]});
  Status w = write_safetensors_f32(a.out, tensors);
  if (!w.ok()) return cli::fail(kExitWriteError, w.error().message);
  std::fprintf(stderr, "wrote %s: logits [%llu, %lld]%s\n", a.out.c_str(),
               static_cast<unsigned long long>(seq), static_cast<long long>(m.config().vocab_size),
               a.hidden ? fmt::format(" and {} hidden states", trace.hidden.size()).c_str() : "");
  return 0;
}

}  // namespace

void register_eval_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Write the logits (and hidden states) of a sequence");
  add_engine_options(cmd, a->engine);
  cmd->add_option("--token-ids", a->token_ids, "the sequence: 1,2,3")->required();
  cmd->add_option("--out", a->out, "output .safetensors file (written atomically)")
      ->required()
      ->check(non_empty());
  cmd->add_flag("--hidden", a->hidden, "also write hidden.<l> after every layer");
  cmd->callback([a, &exit_code] {
    check_engine_flags(a->engine);
    auto ids = parse_token_ids(a->token_ids);
    if (!ids.ok()) usage_error(ids.error().message);
    exit_code = run_eval(*a, *ids);
  });
}

}  // namespace fusecheck::cli
