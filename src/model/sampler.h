// Next-token choice: greedy (temperature 0) or sampling with temperature, top-k, top-p and min-p,
// applied in that order as transformers' logits warpers are, from a seeded generator.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace fusecheck {

struct SamplingParams {
  float temperature = 0.0f;  // <= 0: greedy
  int64_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  uint64_t seed = 0;
  bool greedy() const { return !(temperature > 0.0f); }
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  // logits: [vocab]. NaN logits are never chosen; all-NaN falls back to token 0.
  int32_t next(std::span<const float> logits);
  // next() in two halves, for a device that samples: draw() takes the uniform draw in [0, 1)
  // from the generator (one per sampled token), pick() chooses with it. next(l) == pick(l,
  // draw()). Greedy: pick ignores u.
  double draw();
  int32_t pick(std::span<const float> logits, double u);
  const SamplingParams& params() const { return p_; }

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;  // (probability, id), reused
};

// Index of the largest logit (the lowest index among equals), skipping NaN.
int32_t argmax(std::span<const float> logits);

}  // namespace fusecheck
