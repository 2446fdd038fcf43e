// Report renderers for a CheckResult: text (the layout of the original max-gain screen), JSON (stable schema), markdown, and
// a model-card snippet (YAML front-matter keys plus a markdown section) to publish with a
// checkpoint.
#pragma once

#include <string>

#include "check/check.h"
#include "util/result.h"

namespace fusecheck {

enum class ReportFormat { kText, kJson, kMarkdown, kModelCard };
Result<ReportFormat> parse_report_format(std::string_view name);

struct ReportOptions {
  bool verbose = false;  // add the per-layer table of every metric
  bool color = false;    // ANSI colour (only on a TTY)
};

std::string render_report(const CheckResult& r, ReportFormat format, const ReportOptions& opts);

}  // namespace fusecheck
