// The probe's outputs: JSON (schema "fusecheck.probe/1", also how the compatibility database stores
// a measurement, src/db) and the text report.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "probe/probe.h"
#include "util/result.h"

namespace fusecheck {

nlohmann::json probe_to_json(const ProbeResult& r);
Result<ProbeResult> probe_from_json(const nlohmann::json& j);

// Human-readable report: the three pairs, the per-layer table (propagated and shadow), the greedy
// divergence and the verdict with its reason.
std::string render_probe_text(const ProbeResult& r, const std::string& model_dir);

// "Static prediction vs measurement" for the check report: text lines.
std::string render_probe_comparison(const ProbeResult& r, std::string_view static_verdict,
                                    double static_score, double predicted_amplification);

}  // namespace fusecheck
