// The CPU backend: the Backend table over the SIMD and fused kernels, on one thread pool.
#include "kernels/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fmt/format.h"
#include "kernels/cpu/batched.h"
#include "kernels/cpu/fused.h"
#include "kernels/cpu/gemm_bf16dot.h"
#include "kernels/cpu/quant.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"

namespace fusecheck {

namespace {

using cpu::chunks_for_work;
using cpu::ThreadPool;

// Positions [p0, p1) of one side (keys or values) of a cache layer as fp32, head-major, into dst:
// [n_kv_heads, n_ctx, hd] (fp32 storage copied; bf16 / f16 converted exactly; int8 / fp8
// dequantised with their scales). Attention converts each layer's context once, for every query
// head and token that reads it, not once per query head and token; head-major, so one kv head's
// rows are contiguous (rows kv_dim floats apart, 4 KiB for 8 heads of 128, map to the same L1
// sets and evict each other).
void dequant_positions(const KvLayer& kv, const void* base, const float* scale, int64_t p0,
                       int64_t p1, int64_t n_ctx, float* dst) {
  const int64_t hd = kv.head_dim, kv_dim = kv.n_kv_heads * hd;
  const bool per_channel = kv.scale_kind == KvScale::kPerChannel;
  for (int64_t p = p0; p < p1; ++p)
    for (int64_t h = 0; h < kv.n_kv_heads; ++h) {
      const int64_t e = p * kv_dim + h * hd, c0 = h * hd;
      float* out = dst + (h * n_ctx + p) * hd;
      switch (kv.storage) {
        case KvStorage::F32:
          std::memcpy(out, static_cast<const float*>(base) + e, static_cast<size_t>(hd) * 4);
          break;
        case KvStorage::BF16:
          cpu::bf16_to_f32_simd(static_cast<const uint16_t*>(base) + e, hd, out);
          break;
        case KvStorage::F16:
          cpu::f16_to_f32_simd(static_cast<const uint16_t*>(base) + e, hd, out);
          break;
        case KvStorage::Int8: {
          const int8_t* src = static_cast<const int8_t*>(base) + e;
          for (int64_t i = 0; i < hd; ++i)
            out[i] = static_cast<float>(src[i]) * scale[per_channel ? c0 + i : 0];
          break;
        }
        case KvStorage::Fp8E4M3: {
          const uint8_t* src = static_cast<const uint8_t*>(base) + e;
          for (int64_t i = 0; i < hd; ++i)
            out[i] = fp8_e4m3_decode(src[i]) * scale[per_channel ? c0 + i : 0];
          break;
        }
      }
    }
}

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
    split(rows, n * kNormCost, [&](int64_t r0, int64_t r1) {
      cpu::rmsnorm_rows(out + r0 * n, x + r0 * n, gain, r1 - r0, n, eps, t);
    });
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
      cpu::linear_bf16dot(out, x, T, w, bias, t, &pool_, cpu::Bf16DotImpl::kAuto, &xb_);
    else
      cpu::linear_simd(out, x, T, w, bias, t, &pool_);
  }
  // The CPU reference: linear, then add_rmsnorm's add (the same function).
  void linear_add_residual(float* delta, float* h, float* sum, const float* x, int64_t T,
                           const Weight& w, ActType t) override {
    linear(delta, x, T, w, Weight{}, t);
    cpu::fused_add_residual(h, delta, sum, T * w.rows, t);
  }
  void rmsnorm_qkv(float* q, float* k, float* v, const float* x, int64_t T, const float* gain,
                   float eps, const QkvWeights& w, ActType t, float* xn) override {
    cpu::fused_rmsnorm_qkv(q, k, v, x, T, gain, eps, w.q, w.k, w.v, w.bq, w.bk, w.bv, t, xn, &pool_,
                           pairs(t, w.q));
  }
  void qk_norm_rope(float* x, int64_t T, int64_t n_heads, int64_t hd, const float* gain, float eps,
                    const RopeTable& rope, const int32_t* pos0, ActType t, bool fused) override;
  // The CPU reference: the two one-tensor calls.
  void qk_norm_rope_pair(const NormRopeHeads& q, const NormRopeHeads& k, int64_t T, int64_t hd,
                         float eps, const RopeTable& rope, const int32_t* pos0, ActType t,
                         bool fused) override {
    qk_norm_rope(q.x, T, q.n_heads, hd, q.gain, eps, rope, pos0, t, fused);
    qk_norm_rope(k.x, T, k.n_heads, hd, k.gain, eps, rope, pos0, t, fused);
  }
  void kv_append(const KvLayer& kv, const float* k, const float* v, int64_t T,
                 const int32_t* pos0) override;
  // The CPU reference: the two ops.
  void qk_norm_rope_kv_append(const NormRopeHeads& q, const NormRopeHeads& k, const float* v,
                              const KvLayer& kv, int64_t T, int64_t hd, float eps,
                              const RopeTable& rope, const int32_t* pos0, ActType t,
                              bool fused) override {
    qk_norm_rope_pair(q, k, T, hd, eps, rope, pos0, t, fused);
    kv_append(kv, k.x, v, T, pos0);
  }
  void attention(float* out, const float* q, const KvLayer& kv, const int32_t* pos0,
                 const AttentionParams& p) override;
  void add(float* out, const float* a, const float* b, int64_t n, ActType t) override {
    cpu::add_rows(out, a, b, n, t);
  }
  void silu_mul(float* out, const float* gate, const float* up, int64_t n, ActType t) override {
    split(n, kSiluCost, [&](int64_t i0, int64_t i1) {
      cpu::silu_mul_rows(out + i0, gate + i0, up + i0, i1 - i0, t);
    });
  }
  void gate_up_silu(float* out, const float* x, int64_t T, const Weight& wg, const Weight& wu,
                    ActType t, float* gate, float* up) override {
    cpu::fused_gate_up_silu(out, x, T, wg, wu, t, gate, up, &pool_, pairs(t, wg));
  }
  // The CPU reference: add_rmsnorm's norm (the same function) on each row, then gate_up_silu.
  void rmsnorm_gate_up_silu(float* out, float* normed, const float* sum, int64_t T,
                            const float* gain, float eps, const Weight& wg, const Weight& wu,
                            ActType t, float* gate, float* up) override {
    const int64_t n = wg.cols;
    for (int64_t r = 0; r < T; ++r)
      cpu::fused_rmsnorm(normed + r * n, sum + r * n, gain, n, eps, t);
    gate_up_silu(out, normed, T, wg, wu, t, gate, up);
  }
  void logits(float* out, const float* x, int64_t T, const Weight& lm_head, ActType t) override {
    if (pairs(t, lm_head))
      cpu::linear_bf16dot(out, x, T, lm_head, Weight{}, t, &pool_, cpu::Bf16DotImpl::kAuto, &xb_);
    else
      cpu::linear_simd(out, x, T, lm_head, Weight{}, t, &pool_);
  }

 private:
  // Work per element of the row ops in thread_pool.h's units (GEMV multiply-adds, ~0.2 ns each):
  // an rmsnorm element costs about two, a SiLU (std::exp) about twenty, a RoPE'd q/k value four.
  static constexpr int64_t kNormCost = 2, kSiluCost = 20, kRopeCost = 4;
  // fn(i0, i1) over [0, n) on as many threads as the work (n * cost) is worth; results do not
  // depend on the split (every element or row is computed on its own).
  template <typename F>
  void split(int64_t n, int64_t cost, F&& fn) {
    const int64_t chunks = std::min<int64_t>(pool_.threads(), cpu::chunks_for_work(n * cost));
    if (chunks <= 1) return fn(int64_t{0}, n);
    pool_.parallel_for(n, fn, chunks);
  }

  // Per-thread attention scratch, grown (rarely) to the longest context seen.
  struct Scratch {
    std::vector<float> scores, acc;
  };

  // The bf16-pair dot runs on the model-dtype path of bf16 weights only: the fp32 reference path
  // (ActType::F32) and other weight dtypes keep the contract.
  bool pairs(ActType t, const Weight& w) const {
    return dot_ == DotChoice::kBf16Pairs && t == ActType::BF16 && w.dtype == DType::BF16;
  }

  ThreadPool pool_;
  DotChoice dot_ = DotChoice::kContract;
  std::vector<float> cos_sin_;  // [chunks, hd] the standard path's rounded cos and sin, per chunk
  std::vector<Scratch> scratch_;
  std::vector<uint16_t> xb_;   // the bf16-pair projections' bf16 copy of their input
  std::vector<float> kv_f32_;  // [2, n_kv_heads, n_ctx, hd] a cache layer's context as fp32
};

void CpuBackend::qk_norm_rope(float* x, int64_t T, int64_t n_heads, int64_t hd, const float* gain,
                              float eps, const RopeTable& rope, const int32_t* pos0, ActType t,
                              bool fused) {
  const int64_t half = hd / 2;
  const float* c = rope.cos + pos0[0] * half;  // [T, hd / 2] from the call's first position
  const float* s = rope.sin + pos0[0] * half;
  if (!fused) {
    const int64_t chunks =
        std::min<int64_t>({T, pool_.threads(), chunks_for_work(T * n_heads * hd * kRopeCost)});
    if (static_cast<int64_t>(cos_sin_.size()) < chunks * hd)
      cos_sin_.resize(static_cast<size_t>(chunks * hd));
    // Tokens are independent; chunk k's rounded cos/sin go to its own hd floats of scratch.
    const auto run = [&](int64_t t0, int64_t t1) {
      // parallel_for's chunk c starts at t0 = floor(T c / chunks), so c = ceil(t0 chunks / T).
      const int64_t k = (t0 * chunks + T - 1) / T;
      cpu::qk_norm_rope_rows(x + t0 * n_heads * hd, t1 - t0, n_heads, hd, gain, eps, c + t0 * half,
                             s + t0 * half, t, cos_sin_.data() + k * hd);
    };
    if (chunks <= 1) return run(0, T);
    return pool_.parallel_for(T, run, chunks);
  }
  for (int64_t tok = 0; tok < T; ++tok)
    cpu::fused_qk_norm_rope(x + tok * n_heads * hd, n_heads, hd, gain, eps, c + tok * half,
                            s + tok * half, t);
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
  const int64_t n_ctx = pos0[0] + p.T, units = p.n_heads * p.T, kv_dim = p.n_kv_heads * hd;
  // The context as fp32, head-major [n_kv_heads, n_ctx, hd] per side: one exact conversion (or
  // copy) per layer, shared by every query head and token.
  const size_t side = static_cast<size_t>(n_ctx * kv_dim);
  if (kv_f32_.size() < 2 * side) kv_f32_.resize(2 * side);
  float* keys = kv_f32_.data();
  float* values = keys + side;
  const auto convert = [&](int64_t j0, int64_t j1) {
    dequant_positions(kv, kv.k, kv.k_scale, j0, j1, n_ctx, keys);
    dequant_positions(kv, kv.v, kv.v_scale, j0, j1, n_ctx, values);
  };
  pool_.parallel_for(n_ctx, convert,
                     std::min<int64_t>(pool_.threads(), chunks_for_work(2 * n_ctx * kv_dim)));
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
  }
  const auto run = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      Scratch& s = scratch_[static_cast<size_t>(r)];
      for (int64_t u = units * r / ranges; u < units * (r + 1) / ranges; ++u) {
        // Units in head-major order, so a range reads one kv head's rows for many tokens.
        const int64_t h = u / p.T, tok = u % p.T, c0 = (h / n_rep) * n_ctx * hd;
        const cpu::StridedRows rows(keys + c0, values + c0, hd);
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
