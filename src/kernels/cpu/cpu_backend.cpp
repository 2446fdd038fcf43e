// The CPU backend: the Backend table over the SIMD and fused kernels, on one thread pool.
#include "kernels/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fmt/format.h"
#include "kernels/cpu/fused.h"
#include "kernels/cpu/gemm_bf16dot.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"

namespace fusecheck {

namespace {

using cpu::chunks_for_work;
using cpu::ThreadPool;

// One kv head of a cache layer read in place: a tile of rows dequantised into this reader's
// scratch (fp32 storage is returned as it is, with the row stride of the cache).
class CacheRows final : public cpu::KvRows {
 public:
  CacheRows(const KvLayer& kv, int64_t kv_head, float* k_tile, float* v_tile)
      : kv_(kv),
        kv_dim_(kv.n_kv_heads * kv.head_dim),
        c0_(kv_head * kv.head_dim),
        k_tile_(k_tile),
        v_tile_(v_tile) {}
  const float* keys(int64_t j0, int64_t nb, int64_t* stride) const override {
    return rows(kv_.k, kv_.k_scale, j0, nb, k_tile_, stride);
  }
  const float* values(int64_t j0, int64_t nb, int64_t* stride) const override {
    return rows(kv_.v, kv_.v_scale, j0, nb, v_tile_, stride);
  }

 private:
  const float* rows(const void* base, const float* scale, int64_t j0, int64_t nb, float* tile,
                    int64_t* stride) const {
    const int64_t hd = kv_.head_dim;
    if (kv_.storage == KvStorage::F32) {
      *stride = kv_dim_;
      return static_cast<const float*>(base) + j0 * kv_dim_ + c0_;
    }
    *stride = hd;
    const bool per_channel = kv_.scale_kind == KvScale::kPerChannel;
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t e = (j0 + b) * kv_dim_ + c0_;
      float* dst = tile + b * hd;
      switch (kv_.storage) {
        case KvStorage::BF16:
          cpu::bf16_to_f32_simd(static_cast<const uint16_t*>(base) + e, hd, dst);
          break;
        case KvStorage::F16:
          cpu::f16_to_f32_simd(static_cast<const uint16_t*>(base) + e, hd, dst);
          break;
        case KvStorage::Int8: {
          const int8_t* src = static_cast<const int8_t*>(base) + e;
          for (int64_t i = 0; i < hd; ++i)
            dst[i] = static_cast<float>(src[i]) * scale[per_channel ? c0_ + i : 0];
          break;
        }
        case KvStorage::Fp8E4M3: {
          const uint8_t* src = static_cast<const uint8_t*>(base) + e;
          for (int64_t i = 0; i < hd; ++i)
            dst[i] = fp8_e4m3_decode(src[i]) * scale[per_channel ? c0_ + i : 0];
          break;
        }
        case KvStorage::F32:
          break;
      }
    }
    return tile;
  }

  const KvLayer& kv_;
  int64_t kv_dim_, c0_;
  float *k_tile_, *v_tile_;
};

// Sets uncalibrated scales (all zero) to amax / qmax over x: [T, kv_dim] (1 where amax is 0).
void calibrate(float* scale, bool per_channel, const float* x, int64_t T, int64_t kv_dim,
               float qmax) {
  if (scale[0] != 0.0f) return;
  const int64_t ns = per_channel ? kv_dim : 1;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < kv_dim; ++c) {
      float& a = scale[per_channel ? c : 0];
      a = std::max(a, std::fabs(x[t * kv_dim + c]));
    }
  for (int64_t i = 0; i < ns; ++i) scale[i] = scale[i] > 0 ? scale[i] / qmax : 1.0f;
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) : pool_(threads) {}

  std::string name() const override {
    return fmt::format(
        "cpu {}{}, {} thread{}", cpu::simd_target_name(),
        dot_ == DotChoice::kBf16Pairs ? ", bf16-pairs " + cpu::bf16dot_impl_name() : std::string(),
        pool_.threads(), pool_.threads() == 1 ? "" : "s");
  }
  bool set_dot(DotChoice d) override {
    dot_ = d;
    return true;
  }
  int threads() const override { return pool_.threads(); }
  double read_bandwidth_gbs() override {
    return cpu::measure_read_bandwidth_gbs(const_cast<ThreadPool*>(&pool_));
  }

  Buffer alloc(size_t bytes) override {
    const size_t n = std::max<size_t>(64, (bytes + 63) / 64 * 64);
    void* p = std::aligned_alloc(64, n);
    if (p == nullptr) throw std::bad_alloc();
    std::memset(p, 0, n);
    return Buffer(shared_from_this(), p, bytes);
  }
  void free(void* data, size_t) override { std::free(data); }
  void upload(const Buffer& dst, size_t offset, const void* src, size_t bytes) override {
    std::memcpy(static_cast<unsigned char*>(dst.data()) + offset, src, bytes);
  }
  void download(void* dst, const Buffer& src, size_t offset, size_t bytes) override {
    std::memcpy(dst, static_cast<const unsigned char*>(src.data()) + offset, bytes);
  }
  void synchronize() override {}
  Weight adopt_weight(const Weight& host) override { return host; }

  void embed(float* out, const int32_t* tokens, int64_t T, const Weight& table) override {
    for (int64_t t = 0; t < T; ++t) cpu::weight_row_f32(table, tokens[t], out + t * table.cols);
  }
  void rmsnorm(float* out, const float* x, const float* gain, int64_t rows, int64_t n, float eps,
               ActType t) override {
    for (int64_t r = 0; r < rows; ++r) cpu::rmsnorm(out + r * n, x + r * n, gain, n, eps, t);
  }
  void add_rmsnorm(float* h, const float* delta, float* normed, float* sum_out, const float* gain,
                   int64_t rows, int64_t n, float eps, ActType t) override {
    for (int64_t r = 0; r < rows; ++r)
      cpu::fused_add_rmsnorm(h + r * n, delta ? delta + r * n : nullptr, normed + r * n,
                             sum_out ? sum_out + r * n : nullptr, gain, n, eps, t);
  }
  void linear(float* out, const float* x, int64_t T, const Weight& w, const Weight& bias,
              ActType t) override {
    if (pairs(t, w))
      cpu::linear_bf16dot(out, x, T, w, bias, t, &pool_);
    else
      cpu::linear_simd(out, x, T, w, bias, t, &pool_);
  }
  void rmsnorm_qkv(float* q, float* k, float* v, const float* x, int64_t T, const float* gain,
                   float eps, const QkvWeights& w, ActType t, float* xn) override {
    cpu::fused_rmsnorm_qkv(q, k, v, x, T, gain, eps, w.q, w.k, w.v, w.bq, w.bk, w.bv, t, xn, &pool_,
                           pairs(t, w.q));
  }
  void qk_norm_rope(float* x, int64_t T, int64_t n_heads, int64_t hd, const float* gain, float eps,
                    const RopeTable& rope, const int32_t* pos0, ActType t, bool fused) override;
  void kv_append(const KvLayer& kv, const float* k, const float* v, int64_t T,
                 const int32_t* pos0) override;
  void attention(float* out, const float* q, const KvLayer& kv, const int32_t* pos0,
                 const AttentionParams& p) override;
  void add(float* out, const float* a, const float* b, int64_t n, ActType t) override {
    cpu::add(out, a, b, static_cast<size_t>(n), t);
  }
  void silu_mul(float* out, const float* gate, const float* up, int64_t n, ActType t) override {
    cpu::silu_mul(out, gate, up, static_cast<size_t>(n), t);
  }
  void gate_up_silu(float* out, const float* x, int64_t T, const Weight& wg, const Weight& wu,
                    ActType t, float* gate, float* up) override {
    cpu::fused_gate_up_silu(out, x, T, wg, wu, t, gate, up, &pool_, pairs(t, wg));
  }
  void logits(float* out, const float* x, int64_t T, const Weight& lm_head, ActType t) override {
    if (pairs(t, lm_head))
      cpu::linear_bf16dot(out, x, T, lm_head, Weight{}, t, &pool_);
    else
      cpu::linear_simd(out, x, T, lm_head, Weight{}, t, &pool_);
  }

 private:
  // Per-thread attention scratch, grown (rarely) to the longest context seen.
  struct Scratch {
    std::vector<float> scores, acc, k_tile, v_tile;
  };

  // The bf16-pair dot runs on the model-dtype path of bf16 weights only: the fp32 reference path
  // (ActType::F32) and other weight dtypes keep the contract.
  bool pairs(ActType t, const Weight& w) const {
    return dot_ == DotChoice::kBf16Pairs && t == ActType::BF16 && w.dtype == DType::BF16;
  }

  ThreadPool pool_;
  DotChoice dot_ = DotChoice::kContract;
  std::vector<float> cos_, sin_;  // [hd / 2] the standard path's rounded cos/sin
  std::vector<Scratch> scratch_;
};

void CpuBackend::qk_norm_rope(float* x, int64_t T, int64_t n_heads, int64_t hd, const float* gain,
                              float eps, const RopeTable& rope, const int32_t* pos0, ActType t,
                              bool fused) {
  const int64_t half = hd / 2;
  cos_.resize(static_cast<size_t>(half)), sin_.resize(static_cast<size_t>(half));
  for (int64_t tok = 0; tok < T; ++tok) {
    float* xt = x + tok * n_heads * hd;
    const float* c = rope.cos + (pos0[0] + tok) * half;
    const float* s = rope.sin + (pos0[0] + tok) * half;
    if (fused) {
      cpu::fused_qk_norm_rope(xt, n_heads, hd, gain, eps, c, s, t);
      continue;
    }
    for (int64_t i = 0; i < half; ++i)  // transformers casts cos/sin to the model dtype
      cos_[static_cast<size_t>(i)] = round_one(t, c[i]),
      sin_[static_cast<size_t>(i)] = round_one(t, s[i]);
    for (int64_t h = 0; h < n_heads; ++h) {
      if (gain) cpu::rmsnorm(xt + h * hd, xt + h * hd, gain, hd, eps, t);
      cpu::rope_rotate_half(xt + h * hd, hd, cos_.data(), sin_.data(), t);
    }
  }
}

void CpuBackend::kv_append(const KvLayer& kv, const float* k, const float* v, int64_t T,
                           const int32_t* pos0) {
  const int64_t kv_dim = kv.n_kv_heads * kv.head_dim;
  const bool per_channel = kv.scale_kind == KvScale::kPerChannel;
  const int64_t e0 = static_cast<int64_t>(pos0[0]) * kv_dim, n = T * kv_dim;
  for (int side = 0; side < 2; ++side) {
    const float* src = side == 0 ? k : v;
    void* base = side == 0 ? kv.k : kv.v;
    float* scale = side == 0 ? kv.k_scale : kv.v_scale;
    switch (kv.storage) {
      case KvStorage::F32:
        std::memcpy(static_cast<float*>(base) + e0, src, static_cast<size_t>(n) * 4);
        break;
      case KvStorage::BF16:
        for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(base)[e0 + i] = f32_to_bf16(src[i]);
        break;
      case KvStorage::F16:
        for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(base)[e0 + i] = f32_to_f16(src[i]);
        break;
      case KvStorage::Int8:
        calibrate(scale, per_channel, src, T, kv_dim, kInt8Max);
        for (int64_t i = 0; i < n; ++i)
          static_cast<int8_t*>(base)[e0 + i] =
              int8_code(src[i], scale[per_channel ? i % kv_dim : 0]);
        break;
      case KvStorage::Fp8E4M3:
        calibrate(scale, per_channel, src, T, kv_dim, kFp8E4M3Max);
        for (int64_t i = 0; i < n; ++i)
          static_cast<uint8_t*>(base)[e0 + i] =
              fp8_e4m3_encode(fp8_e4m3_round(src[i] / scale[per_channel ? i % kv_dim : 0]));
        break;
    }
  }
}

void CpuBackend::attention(float* out, const float* q, const KvLayer& kv, const int32_t* pos0,
                           const AttentionParams& p) {
  const int64_t hd = p.head_dim, q_dim = p.n_heads * hd, n_rep = p.n_heads / p.n_kv_heads;
  const int64_t n_ctx = pos0[0] + p.T, units = p.n_heads * p.T;
  // One unit = one (query head, token) output; units are split into as many contiguous ranges as
  // threads, each with its own scratch, so a range always uses the same scratch.
  // Threads by the size of the work: q.k and p.v over every position for every unit.
  const int64_t ranges =
      std::min<int64_t>({units, pool_.threads(), chunks_for_work(2 * units * n_ctx * hd)});
  if (static_cast<int64_t>(scratch_.size()) < ranges) scratch_.resize(static_cast<size_t>(ranges));
  for (int64_t r = 0; r < ranges; ++r) {
    Scratch& s = scratch_[static_cast<size_t>(r)];
    if (static_cast<int64_t>(s.scores.size()) < n_ctx) s.scores.resize(static_cast<size_t>(n_ctx));
    s.acc.resize(static_cast<size_t>(hd));
    s.k_tile.resize(static_cast<size_t>(cpu::kKvTile * hd));
    s.v_tile.resize(static_cast<size_t>(cpu::kKvTile * hd));
  }
  const auto run = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      Scratch& s = scratch_[static_cast<size_t>(r)];
      for (int64_t u = units * r / ranges; u < units * (r + 1) / ranges; ++u) {
        // Units in head-major order, so a range reads one kv head's rows for many tokens.
        const int64_t h = u / p.T, tok = u % p.T;
        const CacheRows rows(kv, h / n_rep, s.k_tile.data(), s.v_tile.data());
        float* o = out + tok * q_dim + h * hd;
        const float* qh = q + tok * q_dim + h * hd;
        const int64_t n = pos0[0] + tok + 1;
        if (p.online)
          cpu::fused_attention(o, qh, rows, n, hd, p.scale, p.act, p.fp16_accumulation,
                               s.acc.data());
        else
          cpu::attention_head_simd(o, qh, rows, n, hd, p.scale, p.act, s.scores.data());
      }
    }
  };
  pool_.parallel_for(ranges, run);
}

}  // namespace

std::shared_ptr<Backend> make_cpu_backend(int threads) {
  return std::make_shared<CpuBackend>(threads);
}

}  // namespace fusecheck
