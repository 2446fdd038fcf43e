#include "model/sampler.h"

#include <algorithm>
#include <cmath>

namespace fusecheck {

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  float best_v = -INFINITY;
  for (size_t i = 0; i < logits.size(); ++i)
    if (logits[i] > best_v) best_v = logits[i], best = static_cast<int32_t>(i);
  return best;
}

Sampler::Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) {}

int32_t Sampler::next(std::span<const float> logits) {
  if (p_.greedy()) return argmax(logits);
  return pick(logits, draw());
}

// uniform_real_distribution(0, b) is generate_canonical * b + 0: drawing u in [0, 1) here and
// scaling it by the kept mass in pick() gives the same r, so seeded outputs are unchanged.
double Sampler::draw() {
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
}

int32_t Sampler::pick(std::span<const float> logits, double u) {
  if (p_.greedy()) return argmax(logits);
  // softmax(logits / temperature), in double for the normalisation.
  const float max_l = logits[static_cast<size_t>(argmax(logits))];
  cand_.clear();
  double sum = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!(logits[i] > -INFINITY)) continue;  // -inf and NaN
    const float e = std::exp((logits[i] - max_l) / p_.temperature);
    sum += e;
    cand_.emplace_back(e, static_cast<int32_t>(i));
  }
  if (cand_.empty()) return 0;
  std::sort(cand_.begin(), cand_.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  size_t keep = cand_.size();
  if (p_.top_k > 0) keep = std::min(keep, static_cast<size_t>(p_.top_k));
  if (p_.top_p < 1.0f) {  // the smallest prefix whose mass reaches top_p (at least one token)
    double cum = 0.0;
    for (size_t i = 0; i < keep; ++i) {
      cum += cand_[i].first / sum;
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  if (p_.min_p > 0.0f) {  // drop tokens below min_p times the top probability
    const float floor = p_.min_p * cand_[0].first;
    size_t i = 1;
    while (i < keep && cand_[i].first >= floor) ++i;
    keep = i;
  }
  double kept = 0.0;
  for (size_t i = 0; i < keep; ++i) kept += cand_[i].first;
  double r = u * kept;
  for (size_t i = 0; i < keep; ++i) {
    r -= cand_[i].first;
    if (r < 0) return cand_[i].second;
  }
  return cand_[keep - 1].second;
}

}  // namespace fusecheck
