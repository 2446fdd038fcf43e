// `fusecheck check MODEL_DIR`: prints the report and exits with the verdict's code.
#include <malloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "check/check.h"
#include "cli/commands.h"
#include "db/store.h"
#include "io/checkpoint.h"
#include "probe/probe_report.h"
#include "report/html.h"
#include "report/report.h"
#include "util/atomic_file.h"

namespace fusecheck::cli {

namespace {

// The check of a 235B checkpoint allocates ~25 MB in small blocks (118 headers, ~37,000 tensor
// entries, the index's parse). Touched 4 KiB at a time that was ~7,200 page faults, as much system
// time as the check's own work. Here the allocator keeps one arena (a thread's own arena is
// another heap, faulted page by page), serves large blocks from the heap too, grows the heap in
// one 64 MiB step and keeps it, and the heap is advised for transparent huge pages, so the kernel
// fills it 2 MiB at a time where it allows that (THP "madvise" or "always"; elsewhere the advice
// is ignored). Process-wide allocator settings: CLI code, called before any thread starts.
void prepare_heap_for_check() {
  constexpr size_t kPad = size_t(64) << 20, kHuge = size_t(2) << 20;
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_THRESHOLD, int(kPad));
  mallopt(M_TRIM_THRESHOLD, int(2 * kPad));
  mallopt(M_TOP_PAD, int(kPad));
  void* grow = std::malloc(kHuge);  // more than the heap's free top: it grows by kPad now
  const auto lo = (reinterpret_cast<uintptr_t>(grow) + kHuge - 1) & ~uintptr_t(kHuge - 1);
  const auto hi = reinterpret_cast<uintptr_t>(sbrk(0));
  std::free(grow);
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
}

// A small checkpoint's check allocates a few MB at most. Blocks of 128 KiB or more (the header
// parser's buffers, the report) would each be a fresh mmap, faulted page by page and unmapped when
// freed; from the heap they are carved from memory the check has already touched, and later
// blocks reuse it. The heap grows in 1 MiB steps and is never trimmed (the process is short).
void prepare_small_heap() {
  constexpr int kMiB = 1 << 20;
  mallopt(M_MMAP_THRESHOLD, 16 * kMiB);
  mallopt(M_TOP_PAD, kMiB);
  mallopt(M_TRIM_THRESHOLD, 64 * kMiB);
}

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
  // Threshold flags override the thresholds file key by key.
  std::optional<double> max_ratio, max_amp, extreme, max_cv;
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

Status apply_threshold_flags(CheckArgs& a) {
  if (!a.max_ratio && !a.max_amp && !a.extreme && !a.max_cv) return ok_status();
  FC_ASSIGN(base, load_thresholds(a.options.thresholds_file));
  Thresholds t = base;
  if (a.max_ratio) t.max_safe_weight_ratio = *a.max_ratio;
  if (a.max_amp) t.max_safe_amplification = *a.max_amp;
  if (a.extreme) t.extreme_weight_threshold = *a.extreme;
  if (a.max_cv) t.max_safe_gain_cv = *a.max_cv;
  a.options.thresholds = t;
  return ok_status();
}

// The verdict that --probe reports and exits with: a forced verdict, else the measurement (it
// outranks the static screen at load time), else the static verdict.
struct Final {
  Verdict verdict;
  const char* source;  // "forced", "probe", "static"
};
Final final_verdict(const CheckResult& r, const std::optional<ProbeResult>& m) {
  if (r.overridden) return {r.verdict, "forced"};
  if (m) return {m->verdict, "probe"};
  return {r.verdict, "static"};
}

// The report with the measurement in the report's own format.
std::string with_probe(const CheckResult& r, ReportFormat f, const ReportOptions& ro,
                       const ProbeResult& m, bool from_cache) {
  const Final fin = final_verdict(r, m);
  const std::string_view static_name = verdict_name(r.score.verdict);
  if (f == ReportFormat::kJson) {
    auto j = nlohmann::json::parse(render_report(r, f, ro));
    j["probe"] = probe_to_json(m);
    j["probe"]["from_cache"] = from_cache;
    j["static_verdict"] = static_name;
    j["verdict"] = verdict_name(fin.verdict);
    j["verdict_source"] = fin.source;
    return j.dump(2) + "\n";
  }
  CheckResult shown = r;  // the headline status is the verdict the command exits with
  shown.verdict = fin.verdict;
  std::string out = render_report(shown, f, ro);
  const std::string cmp =
      render_probe_comparison(m, static_name, r.score.total, r.analysis.amplification);
  const std::string source = fmt::format(
      "Verdict: {} ({})\n", verdict_name(fin.verdict),
      fin.source == std::string("forced")  ? "forced by --force-status or FUSECHECK_FORCE_STATUS"
      : fin.source == std::string("probe") ? "the measurement, which outranks the static screen"
                                           : "the static check");
  if (f == ReportFormat::kText) return out + cmp + source;
  // Markdown and the model card: a section of bullet points, and YAML keys in the card.
  std::string md = "\n### Probe measurement\n\n";
  size_t b = 0;
  for (size_t e; (e = cmp.find('\n', b)) != std::string::npos; b = e + 1) {
    std::string line = cmp.substr(b, e - b);
    size_t t = line.find_first_not_of(' ');
    if (t == std::string::npos || line.starts_with("Static prediction")) continue;
    md += "- " + line.substr(t) + "\n";
  }
  md += "- **" + source.substr(0, source.size() - 1) + "**\n";
  if (f == ReportFormat::kModelCard) {
    const size_t end = out.find("---\n\n");
    if (end != std::string::npos)
      out.insert(end, fmt::format("  static_status: {}\n  probe_status: {}\n  probe_kernels: {}\n"
                                  "  probe_kl_fused_vs_standard: {:.3g}\n  status_source: {}\n",
                                  static_name, verdict_name(m.verdict), m.profile,
                                  m.fused_vs_standard.kl_mean, fin.source));
  }
  return out + md;
}

// Opens the checkpoint for one check and keeps it to the process's exit. A 235B one holds ~37,000
// tensor entries, each with a heap name and shape: freeing them was ~20 M instructions of the
// check, and the command ends once the report is out. The static pointer keeps it reachable, so
// a leak checker does not count it. Only where there is a large heap to fill (an index of >= 1 MiB
// lists ~10,000 tensors or more; a 235B one: 3.3 MB, 36,945) is the heap prepared first: a
// single-file 0.6B check was 0.6 ms slower with it, its few MB coming in 2 MiB pages the kernel
// zeroes whole.
Result<const Checkpoint*> open_kept_to_exit(const std::string& model_dir, int threads) {
  struct stat index_st {};
  if (::stat((model_dir + "/model.safetensors.index.json").c_str(), &index_st) == 0 &&
      index_st.st_size >= (1 << 20))
    prepare_heap_for_check();
  else
    prepare_small_heap();
  FC_ASSIGN(ck, Checkpoint::open(model_dir, threads));
  // volatile: a write-only static may otherwise be optimised away, and then a leak checker
  // would see no pointer to the checkpoint.
  [[maybe_unused]] static const Checkpoint* volatile kept_to_exit = nullptr;
  const Checkpoint* kept = new Checkpoint(std::move(ck));
  kept_to_exit = kept;
  return kept;
}

int run_check(CheckArgs& a) {
  auto fmt_r = parse_report_format(a.format);
  if (!fmt_r) return fail(kExitUsage, fmt_r.error().message);
  if (!a.force_status.empty()) {
    auto v = parse_verdict(a.force_status);
    if (!v) return fail(kExitUsage, "--force-status: " + v.error().message);
    a.options.force_verdict = *v;
  } else {
    auto env = forced_status_from_env();
    if (!env) return input_error(env.error());
    a.options.force_verdict = *env;
  }
  if (auto st = apply_threshold_flags(a); !st) return input_error(st.error());
  // Header parsing of a sharded checkpoint spreads over the machine's cores (at most 8).
  a.options.threads = int(std::clamp(std::thread::hardware_concurrency(), 1u, 8u));
  if (a.options.thresholds)
    if (auto st = validate_thresholds(*a.options.thresholds, "threshold flags"); !st)
      return fail(kExitUsage, st.error().message);

  auto opened = open_kept_to_exit(a.model_dir, a.options.threads);
  if (!opened) return input_error(opened.error());
  auto result = check_checkpoint(**opened, a.options);
  if (!result) return input_error(result.error());
  const CheckResult& r = *result;

  ReportOptions ro;
  ro.verbose = a.verbose;
  ro.color = a.color == "always" || (a.color == "auto" && isatty(STDOUT_FILENO));
  std::string text = render_report(r, *fmt_r, ro);
  std::optional<ProbeResult> measured;
  std::string origin = "static";
  if (a.probe) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();  // the engine may ask for CPU features (main.cpp, init_cpu_features)
#endif
    const std::string db_path = a.options.use_cache ? resolve_db_path(a.db) : "";
    auto p = probe_with_store(a.model_dir, r, db_path, identity_from_path(a.model_dir));
    if (!p) {
      // The static report stands; say why the measurement is missing (without the engine's
      // "check works" hint, which is what ran).
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::string why = p.error().message;
      if (size_t h = why.find("; hint:"); h != std::string::npos) why.resize(h);
      return fail(kExitInputError,
                  "--probe: cannot measure this model: " + why + "; the static report stands");
    }
    if (!p->note.empty()) note(p->note);
    measured = p->result;
    origin = p->origin;
    if (*fmt_r == ReportFormat::kHtml) {
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
      text = with_probe(r, *fmt_r, ro, *measured, p->from_store);
    }
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  if (!stdout_ok()) return kExitWriteError;  // main prints the message
  if (!r.cache_note.empty()) note(r.cache_note);

  if (!a.report_file.empty()) {
    std::string rf = a.report_format.empty() ? format_for_file(a.report_file) : a.report_format;
    auto ff = parse_report_format(rf);
    if (!ff) return fail(kExitUsage, "--report-format: " + ff.error().message);
    ReportOptions file_opts;
    file_opts.verbose = true;
    const std::string body = measured ? with_probe(r, *ff, file_opts, *measured, false)
                                      : render_report(r, *ff, file_opts);
    if (auto st = write_file_atomic(a.report_file, body); !st)
      return fail(kExitWriteError, st.error().message);
  }
  return int(final_verdict(r, measured).verdict);
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
                  "extension (.md markdown, .txt text, .html html, else json)")
      ->check(non_empty());
  cmd->add_option("--report-format", args->report_format,
                  "Format of --report: text, json, markdown, model-card, html");
  cmd->add_option("--thresholds", args->options.thresholds_file,
                  "JSON file overriding thresholds and score weights (see docs/ANALYSIS.md)");
  cmd->add_option("--max-weight-ratio", args->max_ratio, "Override MAX_SAFE_WEIGHT_RATIO (20)")
      ->check(finite_in(0, 1e12));
  cmd->add_option("--max-amplification", args->max_amp, "Override MAX_SAFE_AMPLIFICATION (10)")
      ->check(finite_in(0, 1e12));
  cmd->add_option("--extreme-threshold", args->extreme, "Override EXTREME_WEIGHT_THRESHOLD (10)")
      ->check(finite_in(0, 1e12));
  cmd->add_option("--max-gain-cv", args->max_cv, "Override the max safe gain std/median (2)")
      ->check(finite_in(0, 1e12));
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
  cmd->callback([args, &exit_code]() {
    if (!args->report_format.empty() && args->report_file.empty())
      usage_error("--report-format goes with --report FILE");
    exit_code = run_check(*args);
  });
}

}  // namespace fusecheck::cli
