// The bf16-pair dot: the scalar definition, the AVX512-BF16 GEMM / GEMV (vdpbf16ps through GCC's
// intrinsics: the Highway release the project builds with has no AVX512-BF16 target) and the
// dispatch between it and the Highway emulation (gemm_bf16dot_emu.cpp).
#include "kernels/cpu/gemm_bf16dot.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/gemm_bf16dot_emu.h"
#include "util/half.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define FC_BF16DOT_NATIVE 1
#define FC_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
#else
#define FC_BF16DOT_NATIVE 0
#endif

namespace fusecheck::cpu {

namespace {

constexpr int64_t kPairLanes = 16;          // fp32 lanes of the definition (and of a zmm)
constexpr int64_t kStep = 2 * kPairLanes;   // bf16 elements per step: 32
constexpr int64_t kTileRowsNative = 4;      // rows x tokens of the micro-kernel: 4 x 6 = 24
constexpr int64_t kTileTokensNative = 6;    // accumulators + 6 x + 1 w registers of 32
constexpr int64_t kTileBytes = 128 * 1024;  // weight rows per tile: stays in L2 across tokens

// out = round(s + bias[r]) (no + 0 without a bias: it would turn -0 into +0).
inline float finish(const Weight& bias, int64_t r, float s, ActType act) {
  if (bias) s += element_f32(bias, r);
  return round_one(act, s);
}

// The activations rounded to bf16 (RNE, NaN kept quiet) once per row, zero padded to whole steps,
// into xb (grown, never shrunk: a caller's buffer is reused across calls instead of allocated and
// faulted in per call). x: [T, cols] -> xb: [T, stride], stride = cols rounded up to 32.
void round_rows(const float* x, int64_t T, int64_t cols, int64_t* stride,
                std::vector<uint16_t>& xb) {
  *stride = (cols + kStep - 1) / kStep * kStep;
  if (xb.size() < static_cast<size_t>(T * *stride)) xb.resize(static_cast<size_t>(T * *stride));
  for (int64_t t = 0; t < T; ++t) {
    uint16_t* row = xb.data() + t * *stride;
    for (int64_t i = 0; i < cols; ++i) row[i] = f32_to_bf16(x[t * cols + i]);
    std::fill(row + cols, row + *stride, uint16_t{0});
  }
}

// lane[0] after lane[j] += lane[j + h] for h = 8, 4, 2, 1. lane: [16], overwritten.
inline float fold_lanes(float* lane) {
  for (int64_t h = kPairLanes / 2; h >= 1; h /= 2)
    for (int64_t j = 0; j < h; ++j) lane[j] = lane[j] + lane[j + h];
  return lane[0];
}

uint16_t load_u16(const void* base, int64_t i) {
  uint16_t h;
  std::memcpy(&h, static_cast<const unsigned char*>(base) + 2 * i, 2);
  return h;
}

#if FC_BF16DOT_NATIVE
// GCC 12's extract intrinsics pass _mm256_undefined_ps() as the merge source, which -Wuninitialized
// reports wherever they are inlined into a target("...") function; the value is never read.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"

// The definition's fold of 16 lanes in registers: lane j += lane j + h for h = 8, 4, 2, 1.
FC_BF16_TARGET __attribute__((always_inline)) inline float fold16(__m512 v) {
  const __m256 h8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  const __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
  const __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));         // lanes 0, 1 += lanes 2, 3
  const __m128 h1 = _mm_add_ss(h2, _mm_shuffle_ps(h2, h2, 0x55));  // lane 0 += lane 1
  return _mm_cvtss_f32(h1);
}

// One step of 32 bf16 elements at i: TB activation vectors, R weight vectors (masked by m: the
// masked-off lanes are zero and never fault), R * TB vdpbf16ps.
template <int R, int TB, bool kMasked>
FC_BF16_TARGET __attribute__((always_inline)) inline void step(__m512 (&acc)[R][TB],
                                                               const uint16_t* const* w,
                                                               const uint16_t* const* x, int64_t i,
                                                               __mmask32 m) {
  __m512i xv[TB];
#pragma GCC unroll 8
  for (int t = 0; t < TB; ++t) xv[t] = _mm512_loadu_si512(x[t] + i);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512i wv =
        kMasked ? _mm512_maskz_loadu_epi16(m, w[r] + i) : _mm512_loadu_si512(w[r] + i);
#pragma GCC unroll 8
    for (int t = 0; t < TB; ++t)
      acc[r][t] = _mm512_dpbf16_ps(acc[r][t], (__m512bh)xv[t], (__m512bh)wv);
  }
}

// R rows x TB tokens of raw dots: res[r * TB + t]. Lane j of an accumulator gets pairs j, j + 16,
// ... as the definition says; the weight tail (cols % 32) is a masked load, x is zero padded. The
// lanes fold in halves (8, 4, 2, 1) as the definition's.
// w: R row pointers [cols]; x: TB pointers [stride >= cols, padded].
template <int R, int TB>
FC_BF16_TARGET __attribute__((noinline)) void micro_kernel(const uint16_t* const* w,
                                                           const uint16_t* const* x, int64_t cols,
                                                           float* res) {
  __m512 acc[R][TB];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < TB; ++t) acc[r][t] = _mm512_setzero_ps();
  const int64_t full = cols - cols % kStep;
  for (int64_t i = 0; i < full; i += kStep) step<R, TB, false>(acc, w, x, i, 0);
  if (full < cols)
    step<R, TB, true>(acc, w, x, full, static_cast<__mmask32>((1u << (cols - full)) - 1u));
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int t = 0; t < TB; ++t) res[r * TB + t] = fold16(acc[r][t]);
}

#pragma GCC diagnostic pop

// micro_kernel with a run-time token count tb in [1, TB].
template <int R, int TB>
void micro_kernel_upto(int tb, const uint16_t* const* w, const uint16_t* const* x, int64_t cols,
                       float* res) {
  if (tb == TB) {
    micro_kernel<R, TB>(w, x, cols, res);
  } else if constexpr (TB > 1) {
    micro_kernel_upto<R, TB - 1>(tb, w, x, cols, res);
  }
}

// Rows [r0, r1) for all T tokens: tiles of weight rows (kTileBytes) swept by blocks of
// kTileTokensNative tokens, kTileRowsNative rows at a time; weights read in place from the map.
// A: the activation type, fixed per call so the output stores do not branch on it.
template <ActType A>
void native_rows(float* out, const uint16_t* xb, int64_t stride, int64_t T, const uint16_t* W,
                 int64_t rows, int64_t cols, const Weight& bias, int64_t r0, int64_t r1) {
  int64_t tile = kTileBytes / (2 * cols);
  tile = std::max(kTileRowsNative, tile - tile % kTileRowsNative);
  float res[kTileRowsNative * kTileTokensNative];
  for (int64_t rt = r0; rt < r1; rt += tile) {
    const int64_t re = std::min(r1, rt + tile);
    for (int64_t t0 = 0; t0 < T; t0 += kTileTokensNative) {
      const int tb = static_cast<int>(std::min(kTileTokensNative, T - t0));
      const uint16_t* x[kTileTokensNative];
      for (int t = 0; t < tb; ++t) x[t] = xb + (t0 + t) * stride;
      for (int64_t r = rt; r < re;) {
        // Decode (T == 1) streams one row at a time: one sequential stream of weights is what
        // the prefetchers serve best (simd-inl.h's kGemvRows); prefill takes 4 rows per step.
        const int rr = T > 1 && re - r >= kTileRowsNative ? static_cast<int>(kTileRowsNative) : 1;
        const uint16_t* w[kTileRowsNative];
        for (int i = 0; i < rr; ++i) w[i] = W + (r + i) * cols;
        if (rr == kTileRowsNative)
          micro_kernel_upto<kTileRowsNative, kTileTokensNative>(tb, w, x, cols, res);
        else
          micro_kernel_upto<1, kTileTokensNative>(tb, w, x, cols, res);
        for (int t = 0; t < tb; ++t)  // token-major: each token's rr outputs are adjacent
          for (int i = 0; i < rr; ++i)
            out[(t0 + t) * rows + r + i] = finish(bias, r + i, res[i * tb + t], A);
        r += rr;
      }
    }
  }
}
#endif

}  // namespace

bool bf16dot_native_available() {
#if FC_BF16DOT_NATIVE
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

std::string bf16dot_impl_name() {
  if (bf16dot_native_available()) return "avx512-bf16";
  return std::string("emulated (") + bf16dot_emulation_target() + ")";
}

void linear_bf16dot(float* out, const float* x, int64_t T, const Weight& w, const Weight& bias,
                    ActType act, ThreadPool* pool, Bf16DotImpl impl,
                    std::vector<uint16_t>* scratch) {
  if (T <= 0 || w.rows <= 0) return;
  int64_t stride = 0;
  std::vector<uint16_t> local;
  std::vector<uint16_t>& xb = scratch ? *scratch : local;
  round_rows(x, T, w.cols, &stride, xb);
  const auto* W = static_cast<const uint16_t*>(w.data);
  const bool native = impl != Bf16DotImpl::kEmulated && bf16dot_native_available();
  const int64_t rows = w.rows, cols = w.cols;
  // Chunks of 12 rows (a multiple of the micro-kernel's 4), claimed dynamically as linear_simd's.
  constexpr int64_t kRowQuantum = 12;
  const int64_t units = (rows + kRowQuantum - 1) / kRowQuantum;
  const auto work = [&](int64_t b, int64_t e) {
    const int64_t r0 = b * kRowQuantum, r1 = std::min(rows, e * kRowQuantum);
#if FC_BF16DOT_NATIVE
    if (native) {
      switch (act) {
        case ActType::F32:
          return native_rows<ActType::F32>(out, xb.data(), stride, T, W, rows, cols, bias, r0, r1);
        case ActType::BF16:
          return native_rows<ActType::BF16>(out, xb.data(), stride, T, W, rows, cols, bias, r0, r1);
        case ActType::F16:
          return native_rows<ActType::F16>(out, xb.data(), stride, T, W, rows, cols, bias, r0, r1);
      }
    }
#endif
    bf16dot_rows_emulated(xb.data(), stride, T, W, rows, cols, r0, r1, out);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t r = r0; r < r1; ++r) out[t * rows + r] = finish(bias, r, out[t * rows + r], act);
  };
  (void)native;
  const int64_t macs = T * rows * cols;
  const int64_t chunks =
      dynamic_chunks_for_work(macs) > 1
          ? std::max<int64_t>(2, std::min(dynamic_chunks_for_work(macs), units / 6))
          : 1;
  if (pool != nullptr)
    pool->parallel_for(units, work, chunks);
  else
    work(0, units);
}

void linear_bf16dot_reference(float* out, const float* x, int64_t T, const Weight& w,
                              const Weight& bias, ActType act) {
  const int64_t cols = w.cols, pairs = (cols + 1) / 2;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t r = 0; r < w.rows; ++r) {
      const auto elem = [&](int64_t i, float* xv, float* wv) {
        *xv = i < cols ? bf16_to_f32(f32_to_bf16(x[t * cols + i])) : 0.0f;
        *wv = i < cols ? bf16_to_f32(load_u16(w.data, r * cols + i)) : 0.0f;
      };
      float lane[kPairLanes] = {};
      for (int64_t m = 0; m < pairs; ++m) {
        float x0, w0, x1, w1;
        elem(2 * m, &x0, &w0);
        elem(2 * m + 1, &x1, &w1);
        float& a = lane[m % kPairLanes];
        // Products of two bf16 values (8-bit significands) are exact in fp32.
        a = a + x1 * w1;
        a = a + x0 * w0;
      }
      out[t * w.rows + r] = finish(bias, r, fold_lanes(lane), act);
    }
}

}  // namespace fusecheck::cpu
