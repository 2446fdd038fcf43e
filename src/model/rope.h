// Rotary position embedding frequencies, as transformers computes them (ROPE_INIT_FUNCTIONS):
// "default" and Llama 3's "llama3" scaling. Everything in fp32, as transformers does with autocast
// off; the cos/sin tables are then rounded to the activation type, as transformers casts them.
#pragma once

#include <cstdint>
#include <vector>

#include "io/model_config.h"
#include "kernels/cpu/ops.h"

namespace fusecheck {

class Rope {
 public:
  Rope() = default;
  Rope(const RopeConfig& rope, int64_t head_dim);

  // cos/sin for one position: [head_dim/2] each (transformers repeats them for both halves).
  void cos_sin(int64_t pos, cpu::ActType t, float* cos, float* sin) const;
  const std::vector<float>& inv_freq() const { return inv_freq_; }  // [head_dim/2]

 private:
  std::vector<float> inv_freq_;
};

}  // namespace fusecheck
