// `fusecheck rebalance MODEL OUT [--keys flat|geo|none] [--values flat|none] [--force]
// [--kernels PROFILE]`: writes a function-preserving rescaled copy of the checkpoint (src/repair)
// and re-scores both with the static check. Exit 0 written, 3 input error (nothing written),
// 64 usage error.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "check/check.h"
#include "cli/commands.h"
#include "repair/rebalance.h"

namespace fusecheck::cli {

namespace {

struct RebalanceArgs {
  std::string model_dir, out_dir, keys = "flat", values = "flat", kernels = "fused-int8kv";
  std::string scales = "calibrate", prompts;
  int64_t tokens = 64;
  bool force = false, quiet = false;
};

std::string layer_table(const RebalancePlan& p) {
  std::string out = fmt::format("{:>5}  {:>21}  {:>21}  {:>21}\n", "layer",
                                "key max (before>after)", "key max/median", "value max/median");
  for (size_t l = 0; l < p.layers.size(); ++l) {
    const LayerScales& s = p.layers[l];
    out += fmt::format("{:>5}  {:>9.3g} > {:<9.3g}  {:>9.3g} > {:<9.3g}  {:>9.3g} > {:<9.3g}\n", l,
                       s.key_max_before, s.key_max_after, s.key_spread_before, s.key_spread_after,
                       s.value_spread_before, s.value_spread_after);
  }
  return out;
}

// The static check of one directory for `kernels`, as "VERDICT (score x)".
std::string rescore(const std::string& dir, const std::string& kernels) {
  CheckOptions co;
  co.kernels = kernels;
  co.use_cache = false;

  auto r = check_model(dir, co);
  if (!r.ok()) return "not checked: " + r.error().message;
  return fmt::format("{} (score {:.2f})", verdict_name(r->verdict), r->score.total);
}

int run_rebalance(const RebalanceArgs& a) {
  auto usage = [](const std::string& m) {
    std::fprintf(stderr, "fusecheck rebalance: usage error: %s\n", m.c_str());
    return kExitUsage;
  };
  RebalanceOptions opt;
  auto keys = parse_key_balance(a.keys);
  if (!keys.ok()) return usage(keys.error().message);
  auto values = parse_value_balance(a.values);
  if (!values.ok()) return usage(values.error().message);
  opt.keys = *keys, opt.values = *values, opt.force = a.force;
  if (a.scales != "calibrate" && a.scales != "weights")
    return usage("--scales: \"" + a.scales + "\" is not one of calibrate, weights");
  opt.calibrate = a.scales == "calibrate";
  opt.prompts = a.prompts, opt.tokens = a.tokens;
  if (opt.keys == KeyBalance::kNone && opt.values == ValueBalance::kNone)
    return usage("--keys none --values none would change nothing");
  auto r = rebalance_checkpoint(a.model_dir, a.out_dir, opt);
  if (!r.ok()) {
    std::fprintf(stderr, "fusecheck rebalance: %s\n", r.error().message.c_str());
    return kExitInputError;
  }
  const RebalancePlan& p = r->plan;
  std::string out = fmt::format(
      "wrote {}: {} ({}), scales from {}, keys {} (in {}), values {}; {} tensor(s) changed in {} "
      "file(s), {} file(s) copied byte for byte\n",
      a.out_dir, p.arch, p.dtype, p.calibrated ? "calibration" : "weights",
      key_balance_name(opt.keys), p.via_norms ? "q_norm/k_norm" : "q_proj/k_proj rows",
      value_balance_name(opt.values), p.changed_tensors.size(), r->files_rewritten,
      r->files_copied);
  for (const auto& s : r->skipped) out += "  not copied: " + s + "\n";
  int clamped = 0;
  for (const auto& l : p.layers) clamped += l.clamped;
  if (clamped > 0)
    out += fmt::format(
        "  {} scale(s) moved toward 1 so that every scaled weight stays exact in its dtype\n",
        clamped);
  if (!a.quiet) out += layer_table(p);
  out += fmt::format("static check ({}): before {}, after {}\n", a.kernels,
                     rescore(a.model_dir, a.kernels), rescore(a.out_dir, a.kernels));
  std::fputs(out.c_str(), stdout);
  return 0;
}

}  // namespace

void register_rebalance_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<RebalanceArgs>();
  CLI::App* cmd = app.add_subcommand(
      "rebalance",
      "Write a rescaled copy of the checkpoint with the same outputs and flatter key/value "
      "magnitudes (for lossy KV caches)");
  cmd->add_option("model", a->model_dir, "Hugging Face checkpoint directory")->required();
  cmd->add_option("out", a->out_dir, "output directory (created; must not be MODEL)")->required();
  cmd->add_option(
      "--keys", a->keys,
      "flat: every key pair within one octave (default); geo: keys and queries to their "
      "geometric mean; none");
  cmd->add_option("--values", a->values,
                  "flat: every value channel within one octave (default); none");
  cmd->add_option("--scales", a->scales,
                  "calibrate: from magnitudes measured on the fp32 reference (default); weights: "
                  "from the weights alone");
  cmd->add_option("--prompts", a->prompts,
                  "calibration prompts, one per line (needs the model's tokenizer)");
  cmd->add_option("--tokens", a->tokens, "tokens per calibration sequence (default 64)")
      ->check(CLI::Range(2, 4096));
  cmd->add_flag("--force", a->force, "write into a non-empty OUT");
  cmd->add_option("--kernels", a->kernels,
                  "kernel profile the before/after static check scores (default fused-int8kv)");
  cmd->add_flag("-q,--quiet", a->quiet, "no per-layer table");
  cmd->callback([a, &exit_code] { exit_code = run_rebalance(*a); });
}

}  // namespace fusecheck::cli
