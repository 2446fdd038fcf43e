// The HTML report: one self-contained page (inline CSS and SVG; no script, no external asset, and a
// Content-Security-Policy that forbids loading any) for `check --format html`, `probe --report
// x.html` and `db export --html`. Each section is one checkpoint under one kernel profile: the
// verdict with where it came from, its reasons and the commands that reproduce it; per layer, each
// norm's max |gain| against the extreme threshold, the predicted amplification against its limit,
// and, when a probe exists, the measured standard and fused errors (propagated and shadow). Every
// layer has one element of class "layer-mark" (its amplification bar), for tests and readers.
#pragma once

#include <string>
#include <vector>

#include "check/check.h"

namespace fusecheck {

struct ProbeResult;  // probe/probe.h

struct HtmlSection {
  const CheckResult* check = nullptr;  // required
  const ProbeResult* probe = nullptr;  // optional measurement
  std::string model;                   // heading: model name or path
  std::string verdict_source;          // e.g. "static check", "probe measurement (local)"
  std::vector<std::string> commands;   // shell commands that reproduce the result
};

std::string render_html(const std::vector<HtmlSection>& sections, const std::string& title);

}  // namespace fusecheck
