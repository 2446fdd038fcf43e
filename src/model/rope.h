// Rotary position embedding frequencies, as transformers computes them (ROPE_INIT_FUNCTIONS):
// "default" and Llama 3's "llama3" scaling. Everything in fp32, as transformers does with autocast
// off. The tables stay fp32; the standard path's attention rounds them to the activation type on
// use, as transformers casts them (Backend::qk_norm_rope).
#pragma once

#include <cstdint>
#include <vector>

#include "io/model_config.h"

namespace fusecheck {

class Rope {
 public:
  Rope() = default;
  Rope(const RopeConfig& rope, int64_t head_dim);

  // fp32 cos/sin for positions [p0, p1): cos, sin: [p1 - p0, head_dim/2] each (transformers
  // repeats them for both halves).
  void table(int64_t p0, int64_t p1, float* cos, float* sin) const;

 private:
  std::vector<float> inv_freq_;
};

}  // namespace fusecheck
