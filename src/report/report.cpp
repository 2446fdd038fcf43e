#include "report/report.h"

#include <fmt/format.h>

#include "check/result_json.h"
#include "report/html.h"
#include "report/model_card.h"

namespace fusecheck {

Result<ReportFormat> parse_report_format(std::string_view name) {
  if (name == "text") return ReportFormat::kText;
  if (name == "json") return ReportFormat::kJson;
  if (name == "markdown") return ReportFormat::kMarkdown;
  if (name == "model-card") return ReportFormat::kModelCard;
  if (name == "html") return ReportFormat::kHtml;
  return make_error("unknown format \"{}\"; expected text, json, markdown, model-card or html",
                    name);
}

namespace {

std::string colored(const std::string& s, Verdict v, bool color) {
  if (!color) return s;
  const char* code = v == Verdict::kCompatible ? "32" : v == Verdict::kWarning ? "33" : "31";
  return fmt::format("\033[1;{}m{}\033[0m", code, s);
}

std::string status_line(const CheckResult& r) {
  std::string s = fmt::format("{} (score {:.2f})", verdict_name(r.verdict), r.score.total);
  if (r.overridden)
    s += fmt::format(" [forced by override; the check found {}]", verdict_name(r.score.verdict));
  return s;
}

std::string amplification_line(const CheckResult& r) {
  const Analysis& a = r.analysis;
  return fmt::format("{:.1f}x at layer {} (threshold {:g}x); cumulative {:.1f}x over {} layers",
                     a.amplification, a.worst_layer, r.thresholds.max_safe_amplification,
                     a.cumulative_amplification, a.num_layers);
}

std::string model_line(const CheckResult& r) {
  return fmt::format("{} ({}, {} layers, head_dim {}, gain convention {})", r.model_path,
                     r.model_type, r.config.num_layers, r.config.head_dim, r.gain_convention);
}

// The per-layer metric table, as aligned text or as a markdown table.
std::string layer_table(const CheckResult& r, bool markdown) {
  std::string out;
  const char* hdr[] = {"layer", "norm", "max|g|",   "median", "max/med",
                       "cv",    "p99",  ">extreme", "amp"};
  if (markdown) {
    out += "| layer | norm | max\\|g\\| | median | max/med | cv | p99 | >extreme | amp |\n";
    out += "|---:|---|---:|---:|---:|---:|---:|---:|---:|\n";
  } else {
    out += fmt::format("  {:>5} {:<28} {:>9} {:>8} {:>8} {:>7} {:>8} {:>8} {:>7}\n", hdr[0], hdr[1],
                       hdr[2], hdr[3], hdr[4], hdr[5], hdr[6], hdr[7], hdr[8]);
  }
  for (const auto& n : r.analysis.norms) {
    std::string layer = n.layer >= 0 ? std::to_string(n.layer) : "-";
    std::string amp = "";
    if (n.layer >= 0 && n.kind == NormKind::kK && n.layer < int64_t(r.analysis.layers.size()))
      amp = fmt::format("{:.2f}", r.analysis.layers[size_t(n.layer)].noise.amplification);
    const GainStats& s = n.stats;
    if (markdown)
      out += fmt::format("| {} | {} | {:.3f} | {:.3f} | {:.2f} | {:.2f} | {:.3f} | {} | {} |\n",
                         layer, n.role, s.max_abs, s.median_abs, s.ratio, s.cv, s.p99,
                         s.count_above_extreme, amp);
    else
      out += fmt::format(
          "  {:>5} {:<28} {:>9.3f} {:>8.3f} {:>8.2f} {:>7.2f} {:>8.3f} {:>8} {:>7}\n", layer,
          n.role, s.max_abs, s.median_abs, s.ratio, s.cv, s.p99, s.count_above_extreme, amp);
  }
  return out;
}

std::string render_text(const CheckResult& r, const ReportOptions& o) {
  std::string out;
  out += fmt::format("Model: {}\n", model_line(r));
  out += fmt::format("Kernels: {} ({})\n", r.kernels.name, r.kernels.description);
  out += fmt::format("Status: {}\n", colored(status_line(r), r.verdict, o.color));
  out += "\nIssues Found:\n";
  if (r.score.issues.empty() && r.score.findings.empty()) out += "  none\n";
  for (const auto& i : r.score.issues) out += "  - " + i + "\n";
  for (const auto& f : r.score.findings)
    out += fmt::format("  {} {}\n",
                       f.severity == "error"     ? "! error:"
                       : f.severity == "warning" ? "! warning:"
                                                 : "  note:",
                       f.message);
  out += fmt::format("\nEstimated amplification: {}\n", amplification_line(r));
  out += "Score components:";
  for (const auto& c : r.score.components)
    out += fmt::format(" {} {:.2f} (x{:g});", c.name, c.score, c.weight);
  out.back() = '\n';
  out += "\nRecommendation:\n";
  for (const auto& rec : r.score.recommendations) out += "  " + rec + "\n";
  if (o.verbose) {
    out += "\nPer-layer metrics:\n" + layer_table(r, false);
    out += "\nLayer-wise distribution (max |g| over layers):\n";
    for (const auto& s : r.analysis.roles)
      out += fmt::format(
          "  {:<28} max {:.3f} at layer {}, median of layer maxima {:.3f}, {} of {} "
          "layers above {:g}\n",
          s.role, s.max_of_max, s.max_layer, s.median_of_max, s.layers_above_extreme, s.layers,
          r.thresholds.extreme_weight_threshold);
    out +=
        fmt::format("\nFingerprint: {}{}\n", r.fingerprint, r.from_cache ? " (cached result)" : "");
  }
  return out;
}

std::string render_markdown(const CheckResult& r, bool with_table) {
  std::string out = "## Fused-kernel compatibility (fusecheck)\n\n";
  out += fmt::format("- **Status:** {}\n", status_line(r));
  out += fmt::format("- **Kernel profile:** `{}` ({})\n", r.kernels.name, r.kernels.description);
  out += fmt::format("- **Estimated amplification:** {}\n", amplification_line(r));
  out += fmt::format("- **Checked with:** fusecheck {}\n\n", r.checker_version);
  out += "### Issues found\n\n";
  if (r.score.issues.empty() && r.score.findings.empty()) out += "None.\n";
  for (const auto& i : r.score.issues) out += "- " + i + "\n";
  for (const auto& f : r.score.findings) out += fmt::format("- {}: {}\n", f.severity, f.message);
  out += "\n### Recommendation\n\n";
  for (const auto& rec : r.score.recommendations) out += rec + "\n\n";
  if (with_table) out += "### Per-layer metrics\n\n" + layer_table(r, true);
  return out;
}

}  // namespace

std::string render_report(const CheckResult& r, ReportFormat format, const ReportOptions& o) {
  switch (format) {
    case ReportFormat::kText:
      return render_text(r, o);
    case ReportFormat::kJson: {
      std::string text = result_to_json_text(r);
      text += '\n';
      return text;
    }
    case ReportFormat::kMarkdown:
      return render_markdown(r, o.verbose);
    case ReportFormat::kModelCard:
      return render_model_card(r, CardExtras{});
    case ReportFormat::kHtml: {
      HtmlSection sec{&r,
                      nullptr,
                      r.model_path,
                      "static check",
                      {"fusecheck check " + r.model_path + " --kernels " + r.kernels.name}};
      return render_html({sec}, "fusecheck report: " + r.model_path);
    }
  }
  return {};
}

std::string render_model_card(const CheckResult& r, const CardExtras& x) {
  CardInput in{x.model_name, x.revision, r.fingerprint, r.checker_version, {}};
  CardProfile p{r.kernels.name,
                std::string(verdict_name(r.verdict)),
                r.score.total,
                r.analysis.amplification,
                x.measured_verdict,
                x.measured_kl,
                x.source};
  in.profiles.push_back(p);
  std::string out = render_card_front_matter(in) + render_markdown(r, false);
  if (!x.measured_verdict.empty())
    out += fmt::format(
        "\n- **Measured ({}):** {}{}\n", x.source, x.measured_verdict,
        x.measured_kl ? fmt::format(", KL fused vs standard {:.3g}", *x.measured_kl) : "");
  return out;
}

}  // namespace fusecheck
