// `fusecheck plan MODEL --kernels PROFILE [--budget-kl X] [--budget-top1 Y] [--out plan.json]
// [--device cpu|cuda] [--db FILE | --no-db]`: a per-layer kernel plan (src/plan) within the budget,
// written as fusecheck.plan/1 (to stdout without --out) and stored in the compatibility database,
// where the load-time decision finds it. Exit 0 written, 3 input error, 64 usage, 74 write error.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "check/check.h"
#include "cli/commands.h"
#include "db/record.h"
#include "plan/plan_search.h"
#include "plan/plan_store.h"
#include "util/atomic_file.h"

namespace fusecheck::cli {

namespace {

struct PlanArgs {
  std::string model_dir, kernels = "fused", out, prompts, db, device = "cpu";
  int64_t tokens = 64;
  PlanBudget budget;
  bool no_db = false, quiet = false;
};

void summarise(const PlanFile& p) {
  std::fprintf(stderr,
               "plan: %lld of %lld layer groups fused (ops %.0f%%, bytes %.0f%%, launches %.0f%%); "
               "KV %lld B/token (profile %lld, standard %lld)\n"
               "measured: %.3g added KL, %.2f top-1 points lost (budget %.3g, %.2f): %s; the full "
               "profile: %.3g, %.2f\n",
               static_cast<long long>(p.kept.groups), static_cast<long long>(p.kept.groups_total),
               100 * p.kept.ops, 100 * p.kept.bytes, 100 * p.kept.launches,
               static_cast<long long>(p.kv_bytes_per_token),
               static_cast<long long>(p.profile_kv_bytes_per_token),
               static_cast<long long>(p.standard_kv_bytes_per_token), p.measured.added_kl,
               p.measured.top1_loss_points, p.budget.kl, p.budget.top1_points,
               p.measured.within(p.budget) ? "within budget" : "OVER BUDGET",
               p.full_profile.added_kl, p.full_profile.top1_loss_points);
}

int run_plan_command(const PlanArgs& a) {
  auto bad = [](const Error& e) { return input_error(e); };
  auto registry = NumericsRegistry::load("");
  if (!registry.ok()) return bad(registry.error());
  auto profile = registry->find(a.kernels);
  if (!profile.ok()) return bad(profile.error());
  CheckOptions co;
  co.kernels = a.kernels, co.use_cache = false;
  auto check = check_model(a.model_dir, co);  // the fingerprint, and the files validated
  if (!check.ok()) return bad(check.error());
  LoadOptions lo;
  lo.device = a.device;
  auto model = Model::load(a.model_dir, lo);
  if (!model.ok()) return bad(model.error());
  auto inputs = calibration_inputs(*model, a.tokens, a.prompts);
  if (!inputs.ok()) return bad(inputs.error());

  PlanSearchOptions so;
  so.profile = *profile, so.budget = a.budget, so.inputs = std::move(*inputs);
  if (!a.quiet && isatty(STDERR_FILENO))
    so.progress = [](double f, const std::string& stage) {
      std::fprintf(stderr, "\r%3.0f%% %-32s", 100 * f, stage.c_str());
      if (f >= 1.0) std::fprintf(stderr, "\r%40s\r", "");
    };
  auto r = search_plan(*model, so);
  if (!r.ok()) return bad(r.error());

  PlanFile p;
  p.fingerprint = check->fingerprint, p.model_path = a.model_dir, p.profile = a.kernels;
  p.profile_hash = current_key(check->fingerprint, *profile, a.device).profile_hash;
  p.device = a.device, p.budget = a.budget, p.plan = r->plan;
  p.measured = r->measured, p.full_profile = r->full_profile, p.sensitivity = r->sensitivity;
  p.kept = kept_work(*model, *profile, r->plan, a.tokens);
  const KernelPlan full = KernelPlan::from_profile(*profile, model->config().num_layers);
  p.kv_bytes_per_token = model->new_cache(Precision::kModel, 1, &r->plan).bytes_per_position();
  p.profile_kv_bytes_per_token = model->new_cache(Precision::kModel, 1, &full).bytes_per_position();
  p.standard_kv_bytes_per_token = model->new_cache(Precision::kModel, 1).bytes_per_position();
  const std::string text = plan_to_json(p);
  if (a.out.empty()) {
    std::fputs(text.c_str(), stdout);
  } else if (auto st = write_file_atomic(a.out, text); !st) {
    return fail(kExitWriteError, st.error().message);
  }
  if (!a.no_db) {
    const std::string n = store_plan(resolve_db_path(a.db), p);
    if (!n.empty()) note(n);
  }
  if (!a.quiet) summarise(p);
  return 0;
}

}  // namespace

void register_plan_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<PlanArgs>();
  CLI::App* cmd = app.add_subcommand(
      "plan", "Choose per layer which fused kernels and KV format to run, within a KL budget");
  cmd->add_option("model", a->model_dir, "Hugging Face checkpoint directory")->required();
  cmd->add_option("--kernels", a->kernels, "kernel profile to plan for (default fused)");
  cmd->add_option("--budget-kl", a->budget.kl,
                  "mean KL the plan may add to the standard path's against fp32 (default 1e-3)")
      ->check(finite_in(0.0, 1e6));
  cmd->add_option("--budget-top1", a->budget.top1_points,
                  "top-1 agreement with fp32 it may lose, in points (default 1.0)")
      ->check(finite_in(0.0, 100.0));
  cmd->add_option("--out", a->out, "write the fusecheck.plan/1 JSON here (default stdout)")
      ->check(non_empty());
  cmd->add_option("--device", a->device, "where the measurements run: cpu (default) or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--prompts", a->prompts, "calibration prompts, one per line (needs a tokenizer)");
  cmd->add_option("--tokens", a->tokens, "tokens per calibration sequence (default 64)")
      ->check(int_in(2, 4096));
  cmd->add_option(
      "--db", a->db,
      "compatibility database to store the plan in (default " + default_db_hint() + ")");
  cmd->add_flag("--no-db", a->no_db, "do not store the plan in the database");
  cmd->add_flag("-q,--quiet", a->quiet, "no summary on stderr");
  cmd->callback([a, &exit_code] {
    if (a->no_db && !a->db.empty()) usage_error("--no-db and --db contradict each other");
    exit_code = run_plan_command(*a);
  });
}

}  // namespace fusecheck::cli
