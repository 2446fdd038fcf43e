#include "model/kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/quant.h"
#include "util/half.h"

namespace fusecheck {

KvCache::KvCache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, int64_t max_context,
                 cpu::ActType act, KvFormat format, KvScale scale)
    : n_layers_(n_layers),
      n_kv_heads_(n_kv_heads),
      head_dim_(head_dim),
      max_context_(max_context),
      act_(act),
      format_(format),
      scale_kind_(scale),
      scales_(static_cast<size_t>(2 * n_layers)),
      k_(static_cast<size_t>(n_layers)),
      v_(static_cast<size_t>(n_layers)) {
  switch (format) {
    case KvFormat::kSame:
      storage_ = act;
      break;
    case KvFormat::kFp16:
      storage_ = cpu::ActType::F16;
      break;
    case KvFormat::kInt8:
    case KvFormat::kFp8E4M3:
      storage_ = cpu::ActType::F32;  // dequantised values, emulated exactly
      break;
  }
}

void KvCache::quantize(int64_t layer, int side, int64_t T, float* x) {
  const size_t kv_dim = static_cast<size_t>(n_kv_heads_ * head_dim_);
  const bool int8 = format_ == KvFormat::kInt8;
  const float qmax = int8 ? cpu::kInt8Max : cpu::kFp8E4M3Max;
  std::vector<float>& sc = scales_[static_cast<size_t>(2 * layer + side)];
  const bool per_channel = scale_kind_ == KvScale::kPerChannel;
  if (sc.empty()) {  // calibrate on this (first) batch: amax / qmax
    sc.assign(per_channel ? kv_dim : 1, 0.0f);
    for (int64_t t = 0; t < T; ++t)
      for (size_t c = 0; c < kv_dim; ++c) {
        float& a = sc[per_channel ? c : 0];
        a = std::max(a, std::fabs(x[t * kv_dim + c]));
      }
    for (float& a : sc) a = a > 0 ? a / qmax : 1.0f;
  }
  for (int64_t t = 0; t < T; ++t)
    for (size_t c = 0; c < kv_dim; ++c) {
      float& v = x[t * kv_dim + c];
      const float s = sc[per_channel ? c : 0];
      v = int8 ? cpu::int8_roundtrip(v, s) : cpu::fp8_roundtrip(v, s);
    }
}

int64_t KvCache::bytes_per_position() const {
  return 2 * n_layers_ * n_kv_heads_ * head_dim_ * static_cast<int64_t>(elem_size());
}

int64_t KvCache::bytes_allocated() const {
  return capacity_ * bytes_per_position();
}

Status KvCache::reserve_more(int64_t n) {
  const int64_t need = size_ + n;
  if (need > max_context_)
    return make_error(
        "context of {} tokens exceeds --max-context {}; hint: raise --max-context or shorten the "
        "prompt",
        need, max_context_);
  if (need <= capacity_) return ok_status();
  const int64_t cap = std::min(max_context_, std::max(need, 2 * capacity_));
  const size_t row = static_cast<size_t>(n_kv_heads_ * head_dim_) * elem_size();
  for (auto* side : {&k_, &v_})
    for (auto& buf : *side) buf.resize(static_cast<size_t>(cap) * row);
  capacity_ = cap;
  return ok_status();
}

void KvCache::store(int64_t layer, int64_t pos0, int64_t T, const float* k, const float* v) {
  const size_t n_vals = static_cast<size_t>(n_kv_heads_ * head_dim_) * static_cast<size_t>(T);
  const size_t off =
      static_cast<size_t>(pos0) * static_cast<size_t>(n_kv_heads_ * head_dim_) * elem_size();
  const bool lossy = format_ == KvFormat::kInt8 || format_ == KvFormat::kFp8E4M3;
  for (int side = 0; side < 2; ++side) {
    const float* src = side == 0 ? k : v;
    if (lossy) {
      qbuf_.assign(src, src + n_vals);
      quantize(layer, side, T, qbuf_.data());
      src = qbuf_.data();
    }
    unsigned char* dst = (side == 0 ? k_ : v_)[static_cast<size_t>(layer)].data() + off;
    if (storage_ == cpu::ActType::F32) {
      std::memcpy(dst, src, n_vals * 4);
      continue;
    }
    for (size_t i = 0; i < n_vals; ++i) {
      const uint16_t h = storage_ == cpu::ActType::BF16 ? f32_to_bf16(src[i]) : f32_to_f16(src[i]);
      std::memcpy(dst + 2 * i, &h, 2);
    }
  }
}

void KvCache::load_head(int64_t layer, int64_t kv_head, int64_t n, float* k_out,
                        float* v_out) const {
  const size_t kv_dim = static_cast<size_t>(n_kv_heads_ * head_dim_);
  const size_t hd = static_cast<size_t>(head_dim_);
  for (int side = 0; side < 2; ++side) {
    const unsigned char* base = (side == 0 ? k_ : v_)[static_cast<size_t>(layer)].data();
    float* out = side == 0 ? k_out : v_out;
    for (int64_t p = 0; p < n; ++p) {
      const size_t elem = static_cast<size_t>(p) * kv_dim + static_cast<size_t>(kv_head) * hd;
      const unsigned char* src = base + elem * elem_size();
      float* dst = out + static_cast<size_t>(p) * hd;
      if (storage_ == cpu::ActType::F32) {
        std::memcpy(dst, src, hd * 4);
      } else {
        for (size_t i = 0; i < hd; ++i) {
          uint16_t h;
          std::memcpy(&h, src + 2 * i, 2);
          dst[i] = storage_ == cpu::ActType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
        }
      }
    }
  }
}

}  // namespace fusecheck
