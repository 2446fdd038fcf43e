// `fusecheck check MODEL_DIR`: prints the report and exits with the verdict's code.
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "check/check.h"
#include "cli/commands.h"
#include "db/store.h"
#include "probe/probe_report.h"
#include "report/html.h"
#include "report/report.h"
#include "util/atomic_file.h"

namespace fusecheck::cli {

namespace {

struct CheckArgs {
  std::string model_dir;
  std::string format = "text";
  std::string report_file;
  std::string report_format;  // default: from the report file's extension, else json
  bool verbose = false, probe = false;
  std::string color = "auto";
  CheckOptions options;
  std::string force_status;
  std::string db;  // --db: the compatibility database (default under the XDG data dir)
  // Threshold flags override the thresholds file key by key (NaN = not given).
  double max_ratio = NAN, max_amp = NAN, extreme = NAN, max_cv = NAN;
};

std::string format_for_file(const std::string& path) {
  auto ends = [&](const char* s) {
    std::string e(s);
    return path.size() >= e.size() && path.compare(path.size() - e.size(), e.size(), e) == 0;
  };
  if (ends(".md")) return "markdown";
  if (ends(".txt")) return "text";
  if (ends(".html")) return "html";
  return "json";
}

int run_check(CheckArgs& a) {
  auto fail = [](const std::string& msg, int code) {
    std::fprintf(stderr, "fusecheck: error: %s\n", msg.c_str());
    return code;
  };
  auto fmt_r = parse_report_format(a.format);
  if (!fmt_r) return fail(fmt_r.error().message, kExitUsage);
  if (!a.force_status.empty()) {
    auto v = parse_verdict(a.force_status);
    if (!v) return fail("--force-status: " + v.error().message, kExitUsage);
    a.options.force_verdict = *v;
  }
  if (!std::isnan(a.max_ratio) || !std::isnan(a.max_amp) || !std::isnan(a.extreme) ||
      !std::isnan(a.max_cv)) {
    auto base = load_thresholds(a.options.thresholds_file);
    if (!base) return fail(base.error().message, kExitInputError);
    Thresholds t = *base;
    if (!std::isnan(a.max_ratio)) t.max_safe_weight_ratio = a.max_ratio;
    if (!std::isnan(a.max_amp)) t.max_safe_amplification = a.max_amp;
    if (!std::isnan(a.extreme)) t.extreme_weight_threshold = a.extreme;
    if (!std::isnan(a.max_cv)) t.max_safe_gain_cv = a.max_cv;
    if (auto st = validate_thresholds(t, "threshold flags"); !st)
      return fail(st.error().message, kExitUsage);
    a.options.thresholds = t;
  }

  auto result = check_model(a.model_dir, a.options);
  if (!result) return fail(result.error().message, kExitInputError);
  const CheckResult& r = *result;

  ReportOptions ro;
  ro.verbose = a.verbose;
  ro.color = a.color == "always" || (a.color == "auto" && isatty(STDOUT_FILENO));
  std::string text = render_report(r, *fmt_r, ro);
  // --probe: the measurement beside the prediction; it decides the exit status, as it outranks
  // the screen at load time.
  std::optional<ProbeResult> measured;
  std::string origin = "static";
  if (a.probe) {
    const std::string db_path = a.options.use_cache ? resolve_db_path(a.db) : "";
    auto p = probe_with_store(a.model_dir, r, db_path, identity_from_path(a.model_dir));
    if (!p) return fail("--probe: " + p.error().message, kExitInputError);
    if (!p->note.empty()) std::fprintf(stderr, "fusecheck: note: %s\n", p->note.c_str());
    measured = p->result;
    origin = p->origin;
    if (*fmt_r == ReportFormat::kJson) {
      auto j = nlohmann::json::parse(text);
      j["probe"] = probe_to_json(*measured);
      j["probe"]["from_cache"] = p->from_store;
      j["probe"]["source"] = p->source;
      text = j.dump(2) + "\n";
    } else if (*fmt_r == ReportFormat::kModelCard) {
      CardExtras x;
      const ModelIdentity id = identity_from_path(a.model_dir);
      x.model_name = id.name, x.revision = id.revision;
      x.measured_verdict = verdict_name(measured->verdict);
      x.measured_kl = measured->fused_vs_standard.kl_mean;
      x.source = origin;
      text = render_model_card(r, x);
    } else if (*fmt_r == ReportFormat::kHtml) {
      HtmlSection sec{
          &r,
          &*measured,
          a.model_dir,
          origin == "database" ? "imported measurement (" + p->source + ")" : "probe measurement",
          {}};
      sec.commands = {"fusecheck check " + a.model_dir + " --kernels " + r.kernels.name +
                      " --probe"};
      text = render_html({sec}, "fusecheck report: " + a.model_dir);
    } else {
      text += render_probe_comparison(*measured, verdict_name(r.verdict), r.score.total,
                                      r.analysis.amplification);
    }
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  if (!r.cache_note.empty()) std::fprintf(stderr, "fusecheck: note: %s\n", r.cache_note.c_str());

  if (!a.report_file.empty()) {
    std::string rf = a.report_format.empty() ? format_for_file(a.report_file) : a.report_format;
    auto ff = parse_report_format(rf);
    if (!ff) return fail("--report-format: " + ff.error().message, kExitUsage);
    ReportOptions file_opts;
    file_opts.verbose = true;
    if (auto st = write_file_atomic(a.report_file, render_report(r, *ff, file_opts)); !st)
      return fail(st.error().message, kExitInputError);
  }
  return int(measured ? measured->verdict : r.verdict);
}

}  // namespace

void register_check_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<CheckArgs>();
  CLI::App* cmd = app.add_subcommand(
      "check",
      "Static check: read a checkpoint's safetensors headers and norm tensors, score its gains, "
      "and "
      "report COMPATIBLE / WARNING / INCOMPATIBLE for fused kernels.\n"
      "Exit codes: 0 COMPATIBLE, 1 WARNING, 2 INCOMPATIBLE, 3 cannot check (bad or missing file), "
      "64 usage error.");
  cmd->add_option("MODEL_DIR", args->model_dir,
                  "Hugging Face model directory (config.json + *.safetensors)")
      ->required();
  cmd->add_option("--kernels", args->options.kernels,
                  "Kernel numerics profile to judge against (generic, standard, fused, "
                  "fused-fp16acc, fused-fp16kv, fused-int8kv, fused-int8kv-channel, fused-fp8kv)")
      ->capture_default_str();
  cmd->add_option("--format", args->format,
                  "Output format: text, json, markdown, model-card, html (one self-contained page)")
      ->capture_default_str();
  cmd->add_flag("-v,--verbose", args->verbose, "Add the per-layer table of every metric");
  cmd->add_flag("--probe", args->probe,
                "Also measure the profile on the model (fusecheck probe; cached) and show the "
                "measurement beside the prediction; the measured verdict sets the exit status");
  cmd->add_option("--report", args->report_file,
                  "Also write the report to FILE (atomically); format from --report-format or the "
                  "extension (.md markdown, .txt text, .html html, else json)");
  cmd->add_option("--report-format", args->report_format,
                  "Format of --report: text, json, markdown, model-card, html");
  cmd->add_option("--thresholds", args->options.thresholds_file,
                  "JSON file overriding thresholds and score weights (see docs/ANALYSIS.md)");
  cmd->add_option("--max-weight-ratio", args->max_ratio, "Override MAX_SAFE_WEIGHT_RATIO (20)");
  cmd->add_option("--max-amplification", args->max_amp, "Override MAX_SAFE_AMPLIFICATION (10)");
  cmd->add_option("--extreme-threshold", args->extreme, "Override EXTREME_WEIGHT_THRESHOLD (10)");
  cmd->add_option("--max-gain-cv", args->max_cv, "Override the max safe gain std/median (2)");
  cmd->add_option("--arch-profiles", args->options.arch_profiles_file,
                  "JSON file replacing the built-in architecture profiles");
  cmd->add_option("--kernel-profiles", args->options.kernel_profiles_file,
                  "JSON file replacing the built-in kernel numerics profiles");
  cmd->add_flag(
      "--no-cache", [args](int64_t) { args->options.use_cache = false; },
      "Neither read nor write the result cache");
  cmd->add_option("--cache-dir", args->options.cache_dir,
                  "Cache directory (default $XDG_CACHE_HOME/fusecheck or ~/.cache/fusecheck)");
  cmd->add_option("--db", args->db,
                  "Compatibility database --probe reads and records measurements in (default " +
                      default_db_hint() + ")");
  cmd->add_option("--force-status", args->force_status,
                  "Testing override: report this verdict (COMPATIBLE, WARNING, INCOMPATIBLE); also "
                  "FUSECHECK_FORCE_STATUS");
  cmd->add_option("--color", args->color, "Colour: auto (on a TTY), always, never")
      ->check(CLI::IsMember({"auto", "always", "never"}))
      ->capture_default_str();
  cmd->callback([args, &exit_code]() { exit_code = run_check(*args); });
}

}  // namespace fusecheck::cli
