// `fusecheck probe MODEL [--kernels PROFILE] [--prompts FILE] [--tokens N] [--json]`: measures the
// fused profile against the standard path and the fp32 reference (src/probe) and records the
// measurement in the compatibility database (src/db), where it outranks the static check at load
// time. --report x.html writes the HTML page, x.json the JSON, anything else the text. Exit 0
// COMPATIBLE, 2 INCOMPATIBLE, 3 input error, 64 usage error.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "check/check.h"
#include "cli/commands.h"
#include "cli/engine_cli.h"
#include "db/store.h"
#include "plan/plan_search.h"
#include "probe/probe_report.h"
#include "report/html.h"
#include "util/atomic_file.h"

namespace fusecheck::cli {

namespace {

struct ProbeArgs {
  std::string model_dir, kernels = "fused", prompts, report, report_format, cache_dir, db;
  std::string device = "cpu";
  std::string dot = "contract";  // --dot NAME: the standard and fused paths' dot product
  std::string plan;  // --plan FILE: measure a per-layer plan (not recorded in the database)
  int64_t tokens = 64, greedy_tokens = 32;
  bool json = false, no_cache = false;
  ProbeCriteria criteria;
};

// `--plan FILE`: the plan to measure, and its own budget as the verdict's (the lossy rule).
Status use_plan(const PlanFile& p, const std::string& path, const std::string& fingerprint,
                const Model& m, ProbeOptions& opt) {
  FC_TRY(check_plan_matches(p, fingerprint, m.config().num_layers, path));
  FC_ASSIGN(kp, runnable_plan(p, path));
  opt.plan = std::move(kp);
  opt.criteria.lossy_kl_budget = p.budget.kl;
  opt.criteria.lossy_top1_min = 1 - p.budget.top1_points / 100;
  return ok_status();
}

// A progress bar on stderr (a terminal only), erased when the probe finishes.
void progress_bar(double f, const std::string& stage) {
  const int width = 30, done = static_cast<int>(f * width + 0.5);
  std::fprintf(stderr, "\r[%s%s] %3.0f%% %-24s", std::string(done, '#').c_str(),
               std::string(width - done, ' ').c_str(), 100 * f, stage.c_str());
  if (f >= 1.0) std::fprintf(stderr, "\r%*s\r", width + 32, "");
}

// --report FILE, as check's: the format from --report-format, else the extension (.txt text,
// .html the HTML page, else JSON). Returns 0, or the exit code of a write that failed.
int write_probe_report(const ProbeArgs& a, const CheckResult& check, const ProbeResult& r,
                       const std::string& text, const std::string& json_text) {
  const std::string rf = !a.report_format.empty()      ? a.report_format
                         : a.report.ends_with(".txt")  ? "text"
                         : a.report.ends_with(".html") ? "html"
                                                       : "json";
  std::string file_text = rf == "text" ? text : json_text;
  if (rf == "html") {
    HtmlSection sec{&check, &r, a.model_dir, "probe measurement", {}};
    sec.commands = {"fusecheck probe " + a.model_dir + " --kernels " + a.kernels + " --tokens " +
                    std::to_string(a.tokens)};
    file_text = render_html({sec}, "fusecheck probe: " + a.model_dir);
  }
  if (auto st = write_file_atomic(a.report, file_text); !st)
    return fail(kExitWriteError, st.error().message);
  return 0;
}

int run_probe_command(const ProbeArgs& a) {
  auto bad = [](const Error& e) { return input_error(e); };
  auto registry = NumericsRegistry::load("");
  if (!registry.ok()) return bad(registry.error());
  std::optional<PlanFile> plan_file;
  if (!a.plan.empty()) {
    auto pf = read_plan_file(a.plan);
    if (!pf.ok()) return bad(pf.error());
    plan_file = std::move(*pf);
  }
  const std::string kernels = plan_file ? plan_file->profile : a.kernels;
  auto profile = registry->find(kernels);
  if (!profile.ok()) return bad(profile.error());
  // The static check gives the checkpoint's fingerprint (the cache key) and validates the files.
  CheckOptions co;
  co.kernels = kernels;
  co.use_cache = !a.no_cache;
  co.cache_dir = a.cache_dir;
  auto check = check_model(a.model_dir, co);
  if (!check.ok()) return bad(check.error());
  LoadOptions load_opt;
  load_opt.device = a.device;
  auto model = Model::load(a.model_dir, load_opt);
  if (!model.ok()) return bad(model.error());
  auto dot = resolve_dot(a.dot, *model, a.model_dir);
  if (!dot.ok()) return bad(dot.error());
  auto inputs = calibration_inputs(*model, a.tokens, a.prompts);
  if (!inputs.ok()) return bad(inputs.error());

  ProbeOptions opt;
  opt.profile = *profile;
  opt.criteria = a.criteria;
  opt.dot = *dot;
  if (plan_file)
    if (auto st = use_plan(*plan_file, a.plan, check->fingerprint, *model, opt); !st)
      return bad(st.error());
  opt.inputs = std::move(*inputs);
  opt.greedy_tokens = a.greedy_tokens;
  if (isatty(STDERR_FILENO)) opt.progress = progress_bar;
  auto r = run_probe(*model, opt);
  if (!r.ok()) return bad(r.error());
  if (plan_file) r->profile = "plan:" + kernels + " (" + a.plan + ")";
  const bool contract = opt.dot == DotChoice::kContract;
  if (!contract) r->profile += " (dot " + a.dot + ")";

  nlohmann::json j = probe_to_json(*r);
  j["model_path"] = a.model_dir;
  j["static_verdict"] = verdict_name(check->verdict);
  if (plan_file) j["plan"] = a.plan;
  j["dot"] = a.dot;
  j["static_score"] = check->score.total;
  // A plan's measurement is not the profile's, nor is one with another dot product: only the
  // contract's is recorded, so the database's verdicts never move with --dot.
  if (!a.no_cache && !plan_file && contract) {
    const std::string db_path = resolve_db_path(a.db);
    auto rec_note = record_locally(
        db_path, local_record(*check, &*r, identity_from_path(a.model_dir), a.device));
    if (!rec_note.empty()) note(rec_note);
  }
  const std::string text = render_probe_text(*r, a.model_dir) +
                           fmt::format("Static check for {}: {} (score {:.2f})\n", kernels,
                                       verdict_name(check->verdict), check->score.total);
  const std::string json_text = j.dump(2) + "\n";
  std::fputs((a.json ? json_text : text).c_str(), stdout);
  if (!a.report.empty())
    if (int rc = write_probe_report(a, *check, *r, text, json_text); rc) return rc;
  return r->verdict == Verdict::kCompatible ? 0 : 2;
}

}  // namespace

void register_probe_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<ProbeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "probe", "Measure a fused kernel profile against the standard path and fp32 on the model");
  cmd->add_option("model", a->model_dir, "Hugging Face checkpoint directory")->required();
  cmd->add_option("--kernels", a->kernels, "kernel profile to measure (default fused)");
  cmd->add_option("--plan", a->plan,
                  "measure a per-layer plan (fusecheck plan --out FILE) against its own budget")
      ->check(non_empty());
  cmd->add_option("--device", a->device, "where the three paths run: cpu (default) or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--dot", a->dot,
                  "the standard and fused paths' dot product: contract (default) or bf16-pairs "
                  "(opt-in; measured, never recorded in the database)")
      ->check(non_empty());
  cmd->add_option("--prompts", a->prompts, "calibration prompts, one per line (needs a tokenizer)");
  cmd->add_option("--tokens", a->tokens, "tokens per calibration sequence (default 64)")
      ->check(int_in(2, 4096));
  cmd->add_option(
         "--greedy-tokens", a->greedy_tokens,
         "tokens generated to find where fused and standard diverge (default 32; 0 = skip)")
      ->check(int_in(0, 4096));
  cmd->add_flag("--json", a->json, "print the fusecheck.probe/1 JSON report");
  cmd->add_option("--report", a->report,
                  "also write the report to FILE (atomically); format from --report-format, else "
                  "the extension (.txt text, .html the HTML page, else JSON)")
      ->check(non_empty());
  cmd->add_option("--report-format", a->report_format, "format of --report: json, text or html")
      ->check(CLI::IsMember({"json", "text", "html"}));
  cmd->add_option("--kl-factor", a->criteria.kl_factor,
                  "lossless profiles: allowed KL from fp32 as a multiple of the standard path's "
                  "(default 2)")
      ->check(finite_in(1.0, 1e6));
  cmd->add_option("--top1-margin", a->criteria.top1_margin,
                  "lossless profiles: allowed top-1 loss against the standard path (default 0.01)")
      ->check(finite_in(0.0, 1.0));
  cmd->add_option("--lossy-kl", a->criteria.lossy_kl_budget,
                  "lossy profiles: mean KL budget against standard (default 1e-3)")
      ->check(finite_in(0.0, 1e6));
  cmd->add_option("--lossy-top1", a->criteria.lossy_top1_min,
                  "lossy profiles: minimum top-1 agreement with standard (default 0.98)")
      ->check(finite_in(0.0, 1.0));
  cmd->add_flag("--no-cache", a->no_cache,
                "neither read nor write the result cache, nor record in the database");
  cmd->add_option("--db", a->db, "compatibility database (default " + default_db_hint() + ")");
  cmd->add_option("--cache-dir", a->cache_dir, "cache directory (default ~/.cache/fusecheck)");
  cmd->callback([a, cmd, &exit_code] {
    if (!a->plan.empty() && cmd->count("--kernels") > 0)
      usage_error("--plan and --kernels contradict each other (a plan names its profile)");
    if (!a->report_format.empty() && a->report.empty())
      usage_error("--report-format goes with --report FILE");
    if (a->dot != "contract" && a->device == "cuda")
      usage_error("--dot " + a->dot + ": the CUDA backend runs the contract dot product only");
    exit_code = run_probe_command(*a);
  });
}

}  // namespace fusecheck::cli
