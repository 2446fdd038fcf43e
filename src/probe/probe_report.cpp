#include "probe/probe_report.h"

#include <fmt/format.h>

#include "check/cache.h"
#include "check/check.h"
#include "report/json_io.h"

namespace fusecheck {

using json = nlohmann::json;

namespace {

json pair_json(const PairStats& s) {
  return {{"kl_mean", s.kl_mean},
          {"kl_p99", s.kl_p99},
          {"kl_max", s.kl_max},
          {"top1_agreement", s.top1},
          {"rms_dp", s.rms_dp}};
}

PairStats pair_from(const json& j) {
  PairStats s;
  s.kl_mean = j.at("kl_mean").get<double>();
  s.kl_p99 = j.at("kl_p99").get<double>();
  s.kl_max = j.at("kl_max").get<double>();
  s.top1 = j.at("top1_agreement").get<double>();
  s.rms_dp = j.at("rms_dp").get<double>();
  return s;
}

}  // namespace

json probe_to_json(const ProbeResult& r) {
  json layers = json::array();
  for (size_t l = 0; l < r.layers.size(); ++l) {
    const auto& e = r.layers[l];
    layers.push_back({{"layer", l},
                      {"standard_rel_err", e.standard},
                      {"fused_rel_err", e.fused},
                      {"standard_shadow_rel_err", e.standard_shadow},
                      {"fused_shadow_rel_err", e.fused_shadow}});
  }
  return {{"schema", "fusecheck.probe/1"},
          {"checker_version", kCheckerVersion},
          {"probe_revision", kProbeRevision},
          {"verdict", verdict_name(r.verdict)},
          {"reason", r.reason},
          {"kernels", r.profile},
          {"lossy", r.lossy},
          {"sequences", r.sequences},
          {"positions", r.positions},
          {"standard_vs_fp32", pair_json(r.standard_vs_fp32)},
          {"fused_vs_fp32", pair_json(r.fused_vs_fp32)},
          {"fused_vs_standard", pair_json(r.fused_vs_standard)},
          {"layers", layers},
          {"greedy_tokens", r.greedy_tokens},
          {"greedy_divergence", r.greedy_divergence},
          {"seconds", r.seconds}};
}

Result<ProbeResult> probe_from_json(const json& j) {
  try {
    if (j.at("schema") != "fusecheck.probe/1") return make_error("not a fusecheck.probe/1 report");
    ProbeResult r;
    FC_ASSIGN(v, parse_verdict(j.at("verdict").get<std::string>()));
    r.verdict = v;
    r.reason = j.at("reason").get<std::string>();
    r.profile = j.at("kernels").get<std::string>();
    r.lossy = j.at("lossy").get<bool>();
    r.sequences = j.at("sequences").get<int64_t>();
    r.positions = j.at("positions").get<int64_t>();
    r.standard_vs_fp32 = pair_from(j.at("standard_vs_fp32"));
    r.fused_vs_fp32 = pair_from(j.at("fused_vs_fp32"));
    r.fused_vs_standard = pair_from(j.at("fused_vs_standard"));
    for (const auto& l : j.at("layers"))
      r.layers.push_back({l.at("standard_rel_err").get<double>(),
                          l.at("fused_rel_err").get<double>(),
                          l.at("standard_shadow_rel_err").get<double>(),
                          l.at("fused_shadow_rel_err").get<double>()});
    r.greedy_tokens = j.at("greedy_tokens").get<int64_t>();
    r.greedy_divergence = j.at("greedy_divergence").get<int64_t>();
    r.seconds = j.at("seconds").get<double>();
    return r;
  } catch (const json::exception& e) {
    return make_error("probe report does not match the schema: {}", e.what());
  }
}

std::string render_probe_text(const ProbeResult& r, const std::string& model_dir) {
  std::string out = fmt::format(
      "fusecheck probe: {}\nkernels: {}{} | {} sequences, {} positions, {:.1f} s\n\n", model_dir,
      r.profile, r.lossy ? " (lossy)" : "", r.sequences, r.positions, r.seconds);
  out += fmt::format("{:<20} {:>11} {:>11} {:>11} {:>8} {:>9}\n", "logits", "KL mean", "KL p99",
                     "KL max", "top-1", "RMS dp");
  auto row = [&](const char* name, const PairStats& s) {
    out += fmt::format("{:<20} {:>11.3g} {:>11.3g} {:>11.3g} {:>7.1f}% {:>9.3g}\n", name, s.kl_mean,
                       s.kl_p99, s.kl_max, 100 * s.top1, s.rms_dp);
  };
  row("standard vs fp32", r.standard_vs_fp32);
  row("fused vs fp32", r.fused_vs_fp32);
  row("fused vs standard", r.fused_vs_standard);
  out += fmt::format("\n{:<6} {:>13} {:>13} {:>13} {:>13}\n", "layer", "standard", "fused",
                     "std shadow", "fused shadow");
  for (size_t l = 0; l < r.layers.size(); ++l) {
    const auto& e = r.layers[l];
    out += fmt::format("{:<6} {:>13.3g} {:>13.3g} {:>13.3g} {:>13.3g}\n", l, e.standard, e.fused,
                       e.standard_shadow, e.fused_shadow);
  }
  out +=
      "(relative error of each layer's output against fp32; shadow: the layer gets fp32's "
      "input)\n\n";
  if (r.greedy_divergence < 0)
    out += fmt::format("greedy: fused and standard agree on all {} generated tokens\n",
                       r.greedy_tokens);
  else
    out += fmt::format("greedy: fused departs from standard at generated token {} of {}\n",
                       r.greedy_divergence, r.greedy_tokens);
  out += fmt::format("\nMeasured: {} ({})\n", verdict_name(r.verdict), r.reason);
  return out;
}

json probe_cache_key(const std::string& fingerprint, const NumericsProfile& profile,
                     const std::string& device) {
  return {{"kind", "probe"},
          {"device", device},
          {"checker_version", kCheckerVersion},
          {"probe_revision", kProbeRevision},
          {"fingerprint", fingerprint},
          {"kernels", numerics_to_json(profile)}};
}

Result<CachedProbe> probe_with_cache(const std::string& model_dir, const NumericsProfile& profile,
                                     const std::string& fingerprint, bool use_cache,
                                     const std::string& cache_dir) {
  CachedProbe out;
  const json key = probe_cache_key(fingerprint, profile);
  std::optional<ResultCache> cache;
  if (use_cache) cache.emplace(cache_dir);
  if (cache)
    if (auto v = cache->load(key))
      if (auto r = probe_from_json(*v)) {
        out.result = std::move(r).value();
        out.from_cache = true;
        return out;
      }
  FC_ASSIGN(model, Model::load(model_dir));
  FC_ASSIGN(inputs, calibration_inputs(model, 64, ""));
  ProbeOptions opt;
  opt.profile = profile;
  opt.inputs = std::move(inputs);
  FC_ASSIGN(r, run_probe(model, opt));
  out.result = std::move(r);
  if (cache)
    if (auto st = cache->store(key, probe_to_json(out.result)); !st)
      out.cache_note = "measurement not cached: " + st.error().message;
  return out;
}

std::string render_probe_comparison(const ProbeResult& r, std::string_view static_verdict,
                                    double static_score, double predicted_amplification) {
  std::string out = "\nStatic prediction vs measurement (" + r.profile + "):\n";
  out += fmt::format("  predicted: {} (score {:.2f}, logit-noise amplification {:.3g}x)\n",
                     static_verdict, static_score, predicted_amplification);
  out += fmt::format(
      "  measured:  {} (fused vs fp32 KL {:.3g}, top-1 {:.1f}%; standard vs fp32 KL {:.3g}, top-1 "
      "{:.1f}%; fused vs standard KL {:.3g})\n",
      verdict_name(r.verdict), r.fused_vs_fp32.kl_mean, 100 * r.fused_vs_fp32.top1,
      r.standard_vs_fp32.kl_mean, 100 * r.standard_vs_fp32.top1, r.fused_vs_standard.kl_mean);
  out += "  " + r.reason + "\n";
  if (verdict_name(r.verdict) != static_verdict)
    out += "  The measurement outranks the static screen at load time.\n";
  return out;
}

}  // namespace fusecheck
