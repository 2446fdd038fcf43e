// The probe's outputs: JSON (schema "fusecheck.probe/1", also the cache's storage format), the text
// report, and the result cache shared with the static check (keyed by the checkpoint fingerprint
// and the kernel profile, so the load-time decision can find a measurement for what it loads).
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

// Cache key: the checkpoint's fingerprint (from check_model), the profile's full contents and the
// probe revision. The calibration settings are part of the stored value, not the key: the latest
// measurement for a checkpoint and profile is the one the loader uses. `device` ("cpu", "cuda") is
// part of the key: a measurement on one device never decides for another.
nlohmann::json probe_cache_key(const std::string& fingerprint, const NumericsProfile& profile,
                               const std::string& device = "cpu");

// The cached measurement for this checkpoint and profile, or a fresh probe with the default
// calibration (stored in the cache). `fingerprint` comes from check_model.
struct CachedProbe {
  ProbeResult result;
  bool from_cache = false;
  std::string cache_note;  // why the cache was not written, if it was not
};
Result<CachedProbe> probe_with_cache(const std::string& model_dir, const NumericsProfile& profile,
                                     const std::string& fingerprint, bool use_cache,
                                     const std::string& cache_dir);

// "Static prediction vs measurement" for the check report: text lines.
std::string render_probe_comparison(const ProbeResult& r, std::string_view static_verdict,
                                    double static_score, double predicted_amplification);

}  // namespace fusecheck
