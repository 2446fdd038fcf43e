#include "model/rope.h"

#include <cmath>

namespace fusecheck {

Rope::Rope(const RopeConfig& rope, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  inv_freq_.resize(static_cast<size_t>(half));
  const float base = static_cast<float>(rope.theta);
  for (int64_t i = 0; i < half; ++i) {
    // 1.0 / (base ** (arange(0, dim, 2).float() / dim)), in fp32.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq_[static_cast<size_t>(i)] = 1.0f / std::pow(base, exponent);
  }
  if (rope.type == "llama3") {
    // transformers' _compute_llama3_parameters: long wavelengths are slowed by `factor`, short
    // ones kept, and the band between is interpolated.
    const float factor = static_cast<float>(rope.factor);
    const float low = static_cast<float>(rope.low_freq_factor);
    const float high = static_cast<float>(rope.high_freq_factor);
    const float old_ctx = static_cast<float>(rope.original_max_position_embeddings);
    const float low_freq_wavelen = old_ctx / low, high_freq_wavelen = old_ctx / high;
    for (float& f : inv_freq_) {
      const float wavelen = 2.0f * static_cast<float>(M_PI) / f;
      float scaled = wavelen > low_freq_wavelen ? f / factor : f;
      const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
      if (medium) {
        const float smooth = (old_ctx / wavelen - low) / (high - low);
        scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
      }
      f = scaled;
    }
  }
}

void Rope::table(int64_t p0, int64_t p1, float* cos, float* sin) const {
  const size_t half = inv_freq_.size();
  for (int64_t pos = p0; pos < p1; ++pos) {
    const float p = static_cast<float>(pos);
    const size_t row = static_cast<size_t>(pos - p0) * half;
    for (size_t i = 0; i < half; ++i) {
      const float angle = inv_freq_[i] * p;  // fp32, like inv_freq @ position_ids
      cos[row + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      sin[row + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
}

}  // namespace fusecheck
