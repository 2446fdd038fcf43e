// Report renderers for a CheckResult: text (the layout of the original max-gain screen), JSON
// (stable schema), markdown, a model-card snippet (YAML front-matter keys plus a markdown section)
// to publish with a checkpoint, and the self-contained HTML page (report/html.h).
#pragma once

#include <optional>
#include <string>

#include "check/check.h"
#include "util/result.h"

namespace fusecheck {

enum class ReportFormat { kText, kJson, kMarkdown, kModelCard, kHtml };
Result<ReportFormat> parse_report_format(std::string_view name);

struct ReportOptions {
  bool verbose = false;  // add the per-layer table of every metric
  bool color = false;    // ANSI colour (only on a TTY)
};

std::string render_report(const CheckResult& r, ReportFormat format, const ReportOptions& opts);

// The model card with what the check alone does not know: the model's name and revision, and a
// measurement (probe or database) that outranks the static verdict.
struct CardExtras {
  std::string model_name, revision;
  std::string measured_verdict;  // "" = none
  std::optional<double> measured_kl;
  std::string source = "static";  // where the verdict came from: static, probe, database
};
std::string render_model_card(const CheckResult& r, const CardExtras& extras);

}  // namespace fusecheck
