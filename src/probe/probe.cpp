#include "probe/probe.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "model/generate.h"
#include "tokenizer/tokenizer.h"
#include "util/atomic_file.h"
#include "util/embedded.h"

namespace fusecheck {

Result<std::vector<std::vector<int32_t>>> calibration_inputs(const Model& m, int64_t tokens,
                                                             const std::string& prompts_file) {
  // Past the trained context the probe would judge positions no real run of the model reaches
  // (RoPE is defined there, the weights were never fitted there): refuse rather than measure them.
  const int64_t trained = m.config().max_position_embeddings;
  if (trained > 0 && tokens > trained)
    return make_error(
        "{}/config.json: max_position_embeddings is {}; calibration sequences of {} tokens would "
        "measure positions the model was not trained at",
        m.dir(), trained, tokens);
  std::vector<std::vector<int32_t>> out;
  const std::string tok_path = m.dir() + "/tokenizer.json";
  if (!prompts_file.empty() || std::ifstream(tok_path).good()) {
    if (!std::ifstream(tok_path).good())
      return make_error("{}: not found; --prompts needs the model's tokenizer", tok_path);
    FC_ASSIGN(tok, Tokenizer::load(m.dir()));
    std::vector<std::string> texts;
    if (!prompts_file.empty()) {
      FC_ASSIGN(text, read_small_file(prompts_file, 16u << 20));
      size_t start = 0;
      while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        if (end > start) texts.push_back(text.substr(start, end - start));
        start = end + 1;
      }
      if (texts.empty()) return make_error("{}: no prompts (one per line expected)", prompts_file);
    } else {
      auto j = nlohmann::json::parse(embedded_data("probe_texts.json"));
      for (const auto& t : j["texts"]) texts.push_back(t.get<std::string>());
    }
    for (const auto& t : texts) {
      std::vector<int32_t> ids = tok.encode_prompt(t);
      if (static_cast<int64_t>(ids.size()) > tokens) ids.resize(static_cast<size_t>(tokens));
      for (int32_t id : ids)
        if (id >= m.config().vocab_size)
          return make_error("{}: the tokenizer gives id {} but the model's vocab_size is {}",
                            tok_path, id, m.config().vocab_size);
      if (ids.size() >= 2) out.push_back(std::move(ids));
    }
    return out;
  }
  // No tokenizer: four seeded pseudo-random sequences over the vocabulary.
  std::mt19937_64 rng(20261126);
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(m.config().vocab_size - 1));
  for (int s = 0; s < 4; ++s) {
    std::vector<int32_t> seq(static_cast<size_t>(tokens));
    for (auto& x : seq) x = id(rng);
    out.push_back(std::move(seq));
  }
  return out;
}

namespace {

// log-softmax of one row of logits, in double.
void log_softmax(const float* x, int64_t n, std::vector<double>& out) {
  out.resize(static_cast<size_t>(n));
  double mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, double(x[i]));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - mx);
  const double lse = mx + std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = double(x[i]) - lse;
}

// Per-position comparisons accumulated over sequences, reduced by stats().
struct PairAccumulator {
  std::vector<double> kl;
  int64_t same_top = 0;
  double dp_sq = 0;

  void add(const float* ref, const float* path, int64_t vocab) {
    std::vector<double> lr, lp;
    log_softmax(ref, vocab, lr);
    log_softmax(path, vocab, lp);
    double k = 0;
    for (size_t i = 0; i < lr.size(); ++i) k += std::exp(lr[i]) * (lr[i] - lp[i]);
    kl.push_back(std::max(k, 0.0));
    const auto top_ref = std::max_element(ref, ref + vocab) - ref;
    const auto top_path = std::max_element(path, path + vocab) - path;
    same_top += top_ref == top_path;
    const double dp =
        std::exp(lp[static_cast<size_t>(top_ref)]) - std::exp(lr[static_cast<size_t>(top_ref)]);
    dp_sq += dp * dp;
  }

  PairStats stats() const {
    PairStats s;
    if (kl.empty()) return s;
    std::vector<double> sorted = kl;
    std::sort(sorted.begin(), sorted.end());
    double sum = 0;
    for (double k : kl) sum += k;
    const double n = static_cast<double>(kl.size());
    s.kl_mean = sum / n;
    s.kl_p99 = sorted[std::min(sorted.size() - 1, static_cast<size_t>(std::ceil(0.99 * n)) - 1)];
    s.kl_max = sorted.back();
    s.top1 = static_cast<double>(same_top) / n;
    s.rms_dp = std::sqrt(dp_sq / n);
    return s;
  }
};

// Sum of squared differences and of squared reference values, for relative errors.
struct ErrSum {
  double num = 0, den = 0;
  void add(const std::vector<float>& x, const std::vector<float>& ref) {
    for (size_t i = 0; i < ref.size(); ++i) {
      const double d = double(x[i]) - ref[i];
      num += d * d;
      den += double(ref[i]) * ref[i];
    }
  }
  double rel() const { return den > 0 ? std::sqrt(num / den) : 0.0; }
};

struct PathRun {
  std::vector<float> logits;  // [T, vocab]
  ForwardTrace trace;
};

Result<PathRun> run_path(const Model& m, const std::vector<int32_t>& ids, Precision p,
                         const KernelPlan& plan) {
  PathRun r;
  KvCache cache = m.new_cache(p, static_cast<int64_t>(ids.size()), &plan);
  FC_TRY(m.forward(ids, p, cache, LogitsFor::kAll, r.logits, &r.trace, &plan));
  return r;
}

// Shadow mode: every layer gets the fp32 reference's input (rounded to the path's activation
// type, the best input that path could store) and its output is compared with the reference's.
// Returns the per-layer sums.
void shadow_errors(const Model& m, const std::vector<int32_t>& ids, const PathRun& ref,
                   const KernelPlan& plan, std::vector<ErrSum>& errs) {
  const int64_t T = static_cast<int64_t>(ids.size()), L = m.config().num_layers;
  KvCache cache = m.new_cache(Precision::kModel, T, &plan);
  Activations ws;
  std::vector<float> out;
  for (int64_t l = 0; l < L; ++l) {
    // input of layer l (hidden[0] = embed); T <= max_context and the plan matches by construction
    (void)m.run_layer(l, ref.trace.hidden[static_cast<size_t>(l)], out, Precision::kModel, cache,
                      plan, ws);
    errs[static_cast<size_t>(l)].add(out, ref.trace.layer_out[static_cast<size_t>(l)]);
  }
}

// First generated position where the two paths' greedy continuations differ, or -1.
Result<int64_t> greedy_divergence(const Model& m, const std::vector<int32_t>& prompt, int64_t n,
                                  const KernelPlan& standard, const KernelPlan& fused) {
  std::vector<std::vector<int32_t>> outs;
  for (const KernelPlan* plan : {&standard, &fused}) {
    Session s(m, Precision::kModel, static_cast<int64_t>(prompt.size()) + n + 1, plan);
    FC_TRY(s.feed(prompt));
    Sampler greedy(SamplingParams{});
    FC_ASSIGN(out, s.generate(n, greedy, {}, nullptr));
    outs.push_back(std::move(out));
  }
  for (size_t i = 0; i < outs[0].size() && i < outs[1].size(); ++i)
    if (outs[0][i] != outs[1][i]) return static_cast<int64_t>(i);
  return int64_t{-1};
}

}  // namespace

void decide_probe_verdict(ProbeResult& r, const ProbeCriteria& c) {
  // A top-1 rate measured on n positions carries sampling noise of sqrt(p(1-p)/n); a difference
  // smaller than two of those is not evidence, so no margin is below it. p is the rate both paths
  // would share if they were equally good, estimated from both (the pooled rate): the standard
  // path's rate alone is 1 when it matched fp32 everywhere, which made a flip of 3 positions in
  // 256 "evidence" (docs/VALIDATION.md). One rate's standard error, not the difference's sqrt(2)
  // times it: both paths are scored on the same positions, so their errors are correlated.
  const double p = r.standard_vs_fp32.top1, n = std::max<double>(1, r.positions);
  const double pooled = 0.5 * (p + r.fused_vs_fp32.top1);
  const double noise = 2 * std::sqrt(pooled * (1 - pooled) / n);
  if (r.lossy) {
    // The budget is spent only by what the profile adds on top of the bf16 noise floor that the
    // standard path already has, both measured against the same fp32 reference.
    const double added_kl = r.fused_vs_fp32.kl_mean - r.standard_vs_fp32.kl_mean;
    const double top1_loss = p - r.fused_vs_fp32.top1;
    const double allowed_loss = std::max(1 - c.lossy_top1_min, noise);
    const bool ok = added_kl <= c.lossy_kl_budget && top1_loss <= allowed_loss;
    r.verdict = ok ? Verdict::kCompatible : Verdict::kIncompatible;
    r.reason = fmt::format(
        "lossy profile: adds {:.3g} mean KL to the standard path's {:.3g} against fp32 (budget "
        "{:.3g}); top-1 with fp32 {:.1f}% against the standard path's {:.1f}% (at most {:.1f} "
        "points lower)",
        added_kl, r.standard_vs_fp32.kl_mean, c.lossy_kl_budget, 100 * r.fused_vs_fp32.top1,
        100 * p, 100 * allowed_loss);
    return;
  }
  const double floor = std::max(r.standard_vs_fp32.kl_mean * c.kl_factor, c.kl_floor);
  const bool kl_ok = r.fused_vs_fp32.kl_mean <= floor;
  const double margin = std::max(c.top1_margin, noise);
  const bool top1_ok = r.fused_vs_fp32.top1 >= p - margin;
  r.verdict = kl_ok && top1_ok ? Verdict::kCompatible : Verdict::kIncompatible;
  r.reason = fmt::format(
      "fused vs fp32 mean KL {:.3g} against {:.3g} ({}x the standard path's {:.3g}); top-1 {:.1f}% "
      "against the standard path's {:.1f}% (margin {:.1f} points)",
      r.fused_vs_fp32.kl_mean, floor, c.kl_factor, r.standard_vs_fp32.kl_mean,
      100 * r.fused_vs_fp32.top1, 100 * r.standard_vs_fp32.top1, 100 * margin);
}

Result<ProbeResult> run_probe(const Model& m, const ProbeOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  if (opt.inputs.empty()) return make_error("probe: no calibration input");
  const int64_t L = m.config().num_layers, vocab = m.config().vocab_size;
  KernelPlan standard = m.standard_plan();
  KernelPlan fused = opt.plan ? *opt.plan : KernelPlan::from_profile(opt.profile, L);
  standard.dot = fused.dot = opt.dot;  // the fp32 reference (Precision::kFp32) runs the contract
  if (static_cast<int64_t>(fused.layers.size()) != L)
    return make_error("probe: the plan has {} layers, the model {}", fused.layers.size(), L);
  ProbeResult r;
  r.profile = opt.profile.name;
  r.lossy = opt.plan.has_value() || opt.profile.lossy();
  r.sequences = static_cast<int64_t>(opt.inputs.size());
  PairAccumulator std_fp32, fused_fp32, fused_std;
  std::vector<ErrSum> prop_std(L), prop_fused(L), sh_std(L), sh_fused(L);
  const double steps = static_cast<double>(opt.inputs.size()) + 1;
  for (size_t s = 0; s < opt.inputs.size(); ++s) {
    const auto& ids = opt.inputs[s];
    if (opt.progress) opt.progress(s / steps, "sequence " + std::to_string(s + 1));
    FC_ASSIGN(ref, run_path(m, ids, Precision::kFp32, standard));
    FC_ASSIGN(stdp, run_path(m, ids, Precision::kModel, standard));
    FC_ASSIGN(fusp, run_path(m, ids, Precision::kModel, fused));
    const int64_t T = static_cast<int64_t>(ids.size());
    for (int64_t t = 0; t < T; ++t) {
      const float* lr = &ref.logits[t * vocab];
      const float* ls = &stdp.logits[t * vocab];
      const float* lf = &fusp.logits[t * vocab];
      std_fp32.add(lr, ls, vocab);
      fused_fp32.add(lr, lf, vocab);
      fused_std.add(ls, lf, vocab);
    }
    r.positions += T;
    for (int64_t l = 0; l < L; ++l) {
      prop_std[l].add(stdp.trace.layer_out[l], ref.trace.layer_out[l]);
      prop_fused[l].add(fusp.trace.layer_out[l], ref.trace.layer_out[l]);
    }
    shadow_errors(m, ids, ref, standard, sh_std);
    shadow_errors(m, ids, ref, fused, sh_fused);
  }
  r.standard_vs_fp32 = std_fp32.stats();
  r.fused_vs_fp32 = fused_fp32.stats();
  r.fused_vs_standard = fused_std.stats();
  for (int64_t l = 0; l < L; ++l)
    r.layers.push_back(
        {prop_std[l].rel(), prop_fused[l].rel(), sh_std[l].rel(), sh_fused[l].rel()});
  if (opt.progress) opt.progress(opt.inputs.size() / steps, "greedy generation");
  const auto& first = opt.inputs.front();
  std::vector<int32_t> prompt(first.begin(), first.begin() + std::min<size_t>(first.size(), 16));
  r.greedy_tokens = opt.greedy_tokens;
  const int64_t trained = m.config().max_position_embeddings;
  if (trained > 0 && static_cast<int64_t>(prompt.size()) + opt.greedy_tokens > trained)
    return make_error(
        "{}/config.json: max_position_embeddings is {}; {} greedy tokens after a {}-token prompt "
        "would pass it",
        m.dir(), trained, opt.greedy_tokens, prompt.size());
  if (opt.greedy_tokens > 0) {
    FC_ASSIGN(div, greedy_divergence(m, prompt, opt.greedy_tokens, standard, fused));
    r.greedy_divergence = div;
  }
  decide_probe_verdict(r, opt.criteria);
  if (opt.progress) opt.progress(1.0, "done");
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

Result<ProbeBaseline> probe_baseline(const Model& m,
                                     const std::vector<std::vector<int32_t>>& inputs) {
  if (inputs.empty()) return make_error("probe: no calibration input");
  const int64_t vocab = m.config().vocab_size;
  const KernelPlan standard = m.standard_plan();
  ProbeBaseline b;
  PairAccumulator acc;
  for (const auto& ids : inputs) {
    FC_ASSIGN(ref, run_path(m, ids, Precision::kFp32, standard));
    FC_ASSIGN(stdp, run_path(m, ids, Precision::kModel, standard));
    const int64_t T = static_cast<int64_t>(ids.size());
    for (int64_t t = 0; t < T; ++t) acc.add(&ref.logits[t * vocab], &stdp.logits[t * vocab], vocab);
    b.positions += T;
    b.seqs.push_back({ids, std::move(ref.logits), std::move(stdp.logits), std::move(ref.trace)});
  }
  b.standard_vs_fp32 = acc.stats();
  return b;
}

Result<PlanStats> measure_plan(const Model& m, const ProbeBaseline& b, const KernelPlan& plan) {
  const int64_t vocab = m.config().vocab_size;
  PairAccumulator fused_fp32, fused_std;
  for (const auto& s : b.seqs) {
    std::vector<float> logits;
    KvCache cache = m.new_cache(Precision::kModel, static_cast<int64_t>(s.ids.size()), &plan);
    FC_TRY(m.forward(s.ids, Precision::kModel, cache, LogitsFor::kAll, logits, nullptr, &plan));
    for (size_t t = 0; t < s.ids.size(); ++t) {
      const size_t at = t * static_cast<size_t>(vocab);
      fused_fp32.add(&s.ref_logits[at], &logits[at], vocab);
      fused_std.add(&s.std_logits[at], &logits[at], vocab);
    }
  }
  PlanStats r;
  r.fused_vs_fp32 = fused_fp32.stats();
  r.fused_vs_standard = fused_std.stats();
  r.added_kl = r.fused_vs_fp32.kl_mean - b.standard_vs_fp32.kl_mean;
  r.top1_loss = b.standard_vs_fp32.top1 - r.fused_vs_fp32.top1;
  return r;
}

Result<double> layer_shadow_error(const Model& m, const ProbeBaseline& b, const KernelPlan& plan,
                                  int64_t layer) {
  ErrSum e;
  Activations ws;
  std::vector<float> out;
  for (const auto& s : b.seqs) {
    KvCache cache = m.new_cache(Precision::kModel, static_cast<int64_t>(s.ids.size()), &plan);
    FC_TRY(m.run_layer(layer, s.ref_trace.hidden[static_cast<size_t>(layer)], out,
                       Precision::kModel, cache, plan, ws));
    e.add(out, s.ref_trace.layer_out[static_cast<size_t>(layer)]);
  }
  return e.rel();
}

}  // namespace fusecheck
