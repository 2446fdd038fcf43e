// Per-target SIMD kernels, compiled once per Highway target by simd.cpp (foreach_target.h).
// Every kernel keeps the scalar oracle's arithmetic exactly (ops.h); see simd.h and
// docs/KERNELS.md.

// Highway's per-target include guard: toggled by foreach_target.h for each target.
#if defined(FUSECHECK_KERNELS_CPU_SIMD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef FUSECHECK_KERNELS_CPU_SIMD_INL_H_
#undef FUSECHECK_KERNELS_CPU_SIMD_INL_H_
#else
#define FUSECHECK_KERNELS_CPU_SIMD_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "hwy/aligned_allocator.h"
#include "hwy/highway.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/thread_pool.h"
#include "util/half.h"

// Targets without a hardware FMA (Highway's MulAdd rounds twice there) and without F16C (Highway's
// emulated f16 PromoteTo does not map Inf/NaN) fall back to per-lane scalar code for those two
// operations. They are correctness fallbacks; x86-64 machines of the last decade run AVX2 or AVX3.
#undef FC_NATIVE_FMA
#undef FC_NATIVE_F16
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
#define FC_NATIVE_FMA 1
#define FC_NATIVE_F16 1
#elif HWY_ARCH_ARM_A64 && HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128
#define FC_NATIVE_FMA 1
#define FC_NATIVE_F16 0
#else
#define FC_NATIVE_FMA 0
#define FC_NATIVE_F16 0
#endif

HWY_BEFORE_NAMESPACE();
namespace fusecheck::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// At most 16 lanes, so one output's 32 contract lanes are a whole number of vectors (kK) whose
// lanes map one to one onto the contract's: vector k, lane j is contract lane k * kN + j.
using DF = hn::CappedTag<float, 16>;
using VF = hn::Vec<DF>;
constexpr size_t kN = hn::MaxLanes(DF());
constexpr size_t kK = kDotLanes / kN;  // accumulator vectors per output
static_assert(kDotLanes % kN == 0, "the 32 contract lanes must be whole vectors");

// Register blocking (accumulators are kK vectors per output):
//   kGemvRows: rows per step of the T == 1 GEMV. One: the matrix is then read strictly
//   sequentially, which the hardware prefetchers stream best (2 or 4 interleaved rows measured
//   30-50% slower from DRAM); the kK chains of one row already cover the FMA latency at DRAM
//   speed.
//   kTileRows x kTileTokens: outputs per micro-kernel of the prefill GEMM. The GEMM computes one
//   accumulator vector k of every output at a time (see GemmRows), so an output costs one
//   register, not kK: AVX3 (32 registers) 4 x 6 = 24 accumulators, 10 loads per 24 FMAs; AVX2
//   (16 registers) 3 x 4 = 12 accumulators (2 x 5, 2 x 6 and 4 x 3 measured the same).
constexpr size_t kGemvRows = 1;
constexpr size_t kTileRows = kN >= 16 ? 4 : (kN >= 8 ? 3 : 1);
constexpr size_t kTileTokens = kN >= 16 ? 6 : (kN >= 8 ? 4 : 1);
// Rows of fp32 weights converted per tile: about 96 KiB, so a tile stays in L2 while every token
// block sweeps it (24 to 256 KiB measured within 10% of each other).
constexpr size_t kTileBytes = 96 * 1024;

// Element types of weight rows; the tags only select the conversion.
struct Bf16 {
  uint16_t bits;
};
struct F16 {
  uint16_t bits;
};

// fp32 fma, one rounding, on every target.
HWY_INLINE VF Fma(VF a, VF b, VF c) {
#if FC_NATIVE_FMA
  return hn::MulAdd(a, b, c);
#else
  const DF d;
  alignas(64) float fa[kN], fb[kN], fc[kN];
  hn::Store(a, d, fa);
  hn::Store(b, d, fb);
  hn::Store(c, d, fc);
  for (size_t i = 0; i < kN; ++i) fc[i] = std::fma(fa[i], fb[i], fc[i]);
  return hn::Load(d, fc);
#endif
}

// kN weights from p (any alignment) as fp32. bf16 and f16 conversions are exact.
HWY_INLINE VF LoadW(DF d, const float* p) {
  return hn::LoadU(d, p);
}
HWY_INLINE VF LoadW(DF d, const Bf16* p) {
  const hn::Rebind<uint16_t, DF> du16;
  const hn::Rebind<uint32_t, DF> du32;
  const auto bits = hn::PromoteTo(du32, hn::LoadU(du16, reinterpret_cast<const uint16_t*>(p)));
  return hn::BitCast(d, hn::ShiftLeft<16>(bits));
}
HWY_INLINE VF LoadW(DF d, const F16* p) {
#if FC_NATIVE_F16
  const hn::Rebind<hwy::float16_t, DF> df16;
  return hn::PromoteTo(d, hn::LoadU(df16, reinterpret_cast<const hwy::float16_t*>(p)));
#else
  alignas(64) float f[kN];
  for (size_t i = 0; i < kN; ++i) {
    uint16_t h;
    std::memcpy(&h, reinterpret_cast<const unsigned char*>(p) + 2 * i, 2);
    f[i] = f16_to_f32(h);
  }
  return hn::Load(d, f);
#endif
}

// Copies the last n < 32 elements of a row into a 32-element buffer padded with -0.0. Paired with
// +0.0 padding of x, every padded lane gets fma(+0, -0, acc) = acc + (-0) = acc exactly (also for
// acc = -0), so the padded lanes keep the scalar tail's values bit for bit.
template <typename WT>
HWY_INLINE void PadTail(const WT* src, size_t n, WT* dst32) {
  WT neg_zero;
  if constexpr (sizeof(WT) == 4) {
    const float z = -0.0f;
    std::memcpy(&neg_zero, &z, 4);
  } else {
    const uint16_t z = 0x8000;
    std::memcpy(&neg_zero, &z, 2);
  }
  std::memcpy(dst32, src, n * sizeof(WT));
  std::fill(dst32 + n, dst32 + kDotLanes, neg_zero);
}
HWY_INLINE void PadTailX(const float* src, size_t n, float* dst32) {
  std::memcpy(dst32, src, n * sizeof(float));
  std::fill(dst32 + n, dst32 + kDotLanes, 0.0f);
}

// Folds lanes within one vector as dot_lanes does (lane k += lane k + w, w = lanes/2 .. 1), in
// registers: halves while wider than 128 bits, then two shuffles.
template <class D>
HWY_INLINE float FoldVector(D d, hn::Vec<D> v) {
  constexpr size_t kLanes = hn::MaxLanes(D());
#if HWY_TARGET == HWY_SCALAR
  static_assert(kLanes == 1);
  (void)d;
  return hn::GetLane(v);
#else
  if constexpr (kLanes > 4) {
    const hn::Half<D> dh;
    return FoldVector(dh, hn::Add(hn::LowerHalf(dh, v), hn::UpperHalf(dh, v)));
  } else if constexpr (kLanes == 4) {
    v = hn::Add(v, hn::Shuffle1032(v));  // lanes 0, 1 += lanes 2, 3
    v = hn::Add(v, hn::Shuffle2301(v));  // lane 0 += lane 1
    return hn::GetLane(v);
  } else {
    static_assert(kLanes == 1, "float vectors on supported targets have 1, 4, 8 or 16 lanes");
    (void)d;
    return hn::GetLane(v);
  }
#endif
}

// Folds one output's 32 lanes exactly as dot_lanes does: lane k += lane k + w for w = 16 .. 1.
// While w >= kN this is whole-vector adds (vector k += vector k + w / kN), then it continues
// within the last vector.
HWY_INLINE float Fold(const VF* acc) {
  VF v[kK];
  for (size_t k = 0; k < kK; ++k) v[k] = acc[k];
  for (size_t w = kK / 2; w >= 1; w /= 2)
    for (size_t k = 0; k < w; ++k) v[k] = hn::Add(v[k], v[k + w]);
  return FoldVector(DF(), v[0]);
}

// One 32-element step for R weight rows x TB token rows: acc[r][t][k] += x[t][i + k kN ..] *
// w[r][i + k kN ..], each weight vector converted once and reused for all TB tokens.
template <size_t R, size_t TB, typename WT>
HWY_INLINE void Step32(DF d, const WT* const* w, const float* const* x, int64_t i,
                       VF (&acc)[R][TB][kK]) {
#pragma GCC unroll 32
  for (size_t k = 0; k < kK; ++k) {
#pragma GCC unroll 4
    for (size_t r = 0; r < R; ++r) {
      const VF wv = LoadW(d, w[r] + i + k * kN);
#pragma GCC unroll 4
      for (size_t t = 0; t < TB; ++t)
        acc[r][t][k] = Fma(hn::LoadU(d, x[t] + i + k * kN), wv, acc[r][t][k]);
    }
  }
}

// res[r * TB + t] = dot_lanes(x[t], w[r]) over nfull (a multiple of 32) elements plus, when wt
// is non-null, a padded 32-element tail wt[r] / xt[t].
// w: R row pointers [nfull]; x: TB pointers [nfull]; wt: R x [32] or null; xt: TB x [32].
template <size_t R, size_t TB, typename WT>
HWY_NOINLINE void DotBlock(const WT* const* w, const float* const* x, int64_t nfull,
                           const WT* const* wt, const float* const* xt, float* res) {
  const DF d;
  VF acc[R][TB][kK];
  for (size_t r = 0; r < R; ++r)
    for (size_t t = 0; t < TB; ++t)
      for (size_t k = 0; k < kK; ++k) acc[r][t][k] = hn::Zero(d);
  for (int64_t i = 0; i < nfull; i += kDotLanes) Step32<R, TB>(d, w, x, i, acc);
  if (wt != nullptr) Step32<R, TB>(d, wt, xt, 0, acc);
  for (size_t r = 0; r < R; ++r)
    for (size_t t = 0; t < TB; ++t) res[r * TB + t] = Fold(acc[r][t]);
}

// What every row-range worker needs. x_stride: floats between token rows of x (cols, or the padded
// width of the tiled path's padded copy).
struct LinearJob {
  float* out;      // [T, rows]
  const float* x;  // [T, x_stride]
  int64_t x_stride;
  int64_t T, rows, cols;
  const void* w;       // [rows, cols] of WT
  const Weight* bias;  // [rows] or absent
  ActType act;
};

// out[t, r] = round(s + bias[r]) exactly as cpu::linear writes it (no +0 when there is no bias:
// that would turn a -0 sum into +0).
HWY_INLINE void StoreOut(const LinearJob& j, int64_t t, int64_t r, float s) {
  if (*j.bias) s += element_f32(*j.bias, r);
  j.out[t * j.rows + r] = round_one(j.act, s);
}

// T == 1 (decode): rows [r0, r1) streamed straight from the map, converted in registers, one row
// at a time (kGemvRows).
template <typename WT>
void GemvRows(const LinearJob& j, int64_t r0, int64_t r1) {
  static_assert(kGemvRows == 1, "GemvRows streams one row per step");
  const WT* W = static_cast<const WT*>(j.w);
  const int64_t cols = j.cols, nfull = cols - cols % kDotLanes;
  const size_t rem = static_cast<size_t>(cols - nfull);
  alignas(64) float xt_buf[kDotLanes];
  alignas(64) WT wt_buf[kDotLanes];
  if (rem) PadTailX(j.x + nfull, rem, xt_buf);
  const float* x[1] = {j.x};
  const float* xt[1] = {xt_buf};
  const WT* wt[1] = {wt_buf};
  for (int64_t r = r0; r < r1; ++r) {
    const WT* w[1] = {W + r * cols};
    if (rem) PadTail(w[0] + nfull, rem, wt_buf);
    float res[1];
    DotBlock<1, 1>(w, x, nfull, rem ? wt : nullptr, xt, res);
    StoreOut(j, 0, r, res[0]);
  }
}

// The prefill layout. The contract gives every output kK independent accumulator vectors: vector
// k only ever sees elements i with (i % 32) / kN == k, in increasing i. So the GEMM computes them
// one k at a time ("pass k"), holding one register per output instead of kK, which is what lets a
// micro-kernel cover R rows x TB tokens with few loads per FMA. Rows and x are stored "lane-major"
// for this: element b * 32 + k * kN + j (block b, vector k, lane j) goes to k * nb * kN + b * kN +
// j, so each pass reads contiguous memory. The order of the FMAs in every lane is unchanged.

// Lane-major position of the kN-element chunk (block b, vector k) in a row of nb blocks.
HWY_INLINE int64_t LaneMajor(int64_t nb, int64_t b, size_t k) {
  return static_cast<int64_t>(k) * nb * static_cast<int64_t>(kN) + b * static_cast<int64_t>(kN);
}

// Converts one weight row (cols elements) to fp32, lane-major, padded with -0.0 to nb blocks.
// dst: [nb * 32].
template <typename WT>
HWY_INLINE void ConvertRowLaneMajor(const WT* src, int64_t cols, int64_t nb, float* dst) {
  const DF d;
  const int64_t full = cols / kDotLanes;
  for (int64_t b = 0; b < full; ++b)
    for (size_t k = 0; k < kK; ++k)
      hn::StoreU(LoadW(d, src + b * kDotLanes + k * kN), d, dst + LaneMajor(nb, b, k));
  if (full < nb) {
    alignas(64) WT buf[kDotLanes];
    PadTail(src + full * kDotLanes, static_cast<size_t>(cols - full * kDotLanes), buf);
    for (size_t k = 0; k < kK; ++k)
      hn::StoreU(LoadW(d, buf + k * kN), d, dst + LaneMajor(nb, full, k));
  }
}

// Pass k of R rows x TB tokens: lanes[(r * TB + t) * 32 + k * kN ..] = accumulator vector k of
// output (r, t). w: R lane-major rows; x: TB lane-major token rows; both [nb * 32].
template <size_t R, size_t TB>
HWY_NOINLINE void PassBlock(const float* const* w, const float* const* x, int64_t nb,
                            float* lanes) {
  const DF d;
  for (size_t k = 0; k < kK; ++k) {
    VF acc[R][TB];
    for (size_t r = 0; r < R; ++r)
      for (size_t t = 0; t < TB; ++t) acc[r][t] = hn::Zero(d);
    const int64_t base = LaneMajor(nb, 0, k);
    const float* wk[R];
    const float* xk[TB];
    for (size_t r = 0; r < R; ++r) wk[r] = w[r] + base;
    for (size_t t = 0; t < TB; ++t) xk[t] = x[t] + base;
    for (int64_t i = 0; i < nb * static_cast<int64_t>(kN); i += kN) {
#pragma GCC unroll 8
      for (size_t r = 0; r < R; ++r) {
        const VF wv = hn::LoadU(d, wk[r] + i);
#pragma GCC unroll 8
        for (size_t t = 0; t < TB; ++t) acc[r][t] = Fma(hn::LoadU(d, xk[t] + i), wv, acc[r][t]);
      }
    }
    for (size_t r = 0; r < R; ++r)
      for (size_t t = 0; t < TB; ++t)
        hn::Store(acc[r][t], d, lanes + (r * TB + t) * kDotLanes + k * kN);
  }
}

// PassBlock with a run-time token count tb in [1, TB].
template <size_t R, size_t TB>
HWY_INLINE void PassBlockUpTo(size_t tb, const float* const* w, const float* const* x, int64_t nb,
                              float* lanes) {
  if (tb == TB) {
    PassBlock<R, TB>(w, x, nb, lanes);
  } else if constexpr (TB > 1) {
    PassBlockUpTo<R, TB - 1>(tb, w, x, nb, lanes);
  }
}

// Folds and stores R x tb outputs from PassBlock's lanes.
HWY_INLINE void StoreBlock(const LinearJob& j, size_t rr, size_t tb, int64_t r0, int64_t t0,
                           const float* lanes) {
  const DF d;
  for (size_t r = 0; r < rr; ++r)
    for (size_t t = 0; t < tb; ++t) {
      VF v[kK];
      for (size_t k = 0; k < kK; ++k) v[k] = hn::Load(d, lanes + (r * tb + t) * kDotLanes + k * kN);
      StoreOut(j, t0 + static_cast<int64_t>(t), r0 + static_cast<int64_t>(r), Fold(v));
    }
}

// T > 1 (prefill): rows [r0, r1) in tiles converted once to lane-major fp32 (each weight read
// once from memory per call); each tile is applied to all tokens, kTileRows x kTileTokens outputs
// at a time. j.x is lane-major with j.x_stride = nb * 32 floats per token.
template <typename WT>
void GemmRows(const LinearJob& j, int64_t r0, int64_t r1) {
  const WT* W = static_cast<const WT*>(j.w);
  const int64_t padded = j.x_stride, nb = padded / kDotLanes;
  int64_t tile_rows = static_cast<int64_t>(kTileBytes / sizeof(float)) / padded;
  tile_rows = std::max<int64_t>(kTileRows, tile_rows - tile_rows % kTileRows);
  auto tile = hwy::AllocateAligned<float>(static_cast<size_t>(tile_rows * padded));
  alignas(64) float lanes[kTileRows * kTileTokens * kDotLanes];
  for (int64_t rt = r0; rt < r1; rt += tile_rows) {
    const int64_t nr = std::min(tile_rows, r1 - rt);
    for (int64_t i = 0; i < nr; ++i)
      ConvertRowLaneMajor(W + (rt + i) * j.cols, j.cols, nb, &tile[i * padded]);
    for (int64_t t0 = 0; t0 < j.T; t0 += kTileTokens) {
      const size_t tb = static_cast<size_t>(std::min<int64_t>(kTileTokens, j.T - t0));
      const float* x[kTileTokens];
      for (size_t t = 0; t < tb; ++t) x[t] = j.x + (t0 + static_cast<int64_t>(t)) * padded;
      int64_t r = 0;
      for (; r + static_cast<int64_t>(kTileRows) <= nr; r += kTileRows) {
        const float* w[kTileRows];
        for (size_t i = 0; i < kTileRows; ++i) w[i] = &tile[(r + static_cast<int64_t>(i)) * padded];
        PassBlockUpTo<kTileRows, kTileTokens>(tb, w, x, nb, lanes);
        StoreBlock(j, kTileRows, tb, rt + r, t0, lanes);
      }
      for (; r < nr; ++r) {
        const float* w[1] = {&tile[r * padded]};
        PassBlockUpTo<1, kTileTokens>(tb, w, x, nb, lanes);
        StoreBlock(j, 1, tb, rt + r, t0, lanes);
      }
    }
  }
}

template <typename WT>
void RunLinear(const LinearJob& j, ThreadPool* pool) {
  // Chunks are whole multiples of 12 rows (a multiple of every kGemvRows / kTileRows), so only the
  // last chunk can end in a partial register block.
  constexpr int64_t kRowQuantum = 12;
  const int64_t units = (j.rows + kRowQuantum - 1) / kRowQuantum;
  const auto work = [&j](int64_t b, int64_t e) {
    const int64_t r0 = b * kRowQuantum, r1 = std::min(j.rows, e * kRowQuantum);
    if (j.T == 1)
      GemvRows<WT>(j, r0, r1);
    else
      GemmRows<WT>(j, r0, r1);
  };
  // Whether to share at all goes by the size of the work (kMinWorkPerThread multiply-adds per
  // thread at least); a shared op is cut into chunks of >= kMinWorkPerChunk multiply-adds and
  // >= 6 quanta (72 rows, one long sequential stream of weights each) that the threads claim
  // dynamically, so a thread the scheduler holds back leaves its share to the others.
  const int64_t macs = j.T * j.rows * j.cols;
  const int64_t chunks =
      dynamic_chunks_for_work(macs) > 1
          ? std::max<int64_t>(2, std::min(dynamic_chunks_for_work(macs), units / 6))
          : 1;
  if (pool != nullptr)
    pool->parallel_for(units, work, chunks);
  else
    work(0, units);
}

void LinearImpl(float* out, const float* x, int64_t T, const Weight& w, const Weight& bias,
                ActType t, ThreadPool* pool) {
  if (T <= 0 || w.rows <= 0) return;
  LinearJob j{out, x, w.cols, T, w.rows, w.cols, w.data, &bias, t};
  std::vector<float> x_lane_major;
  if (T > 1) {
    // The GEMM reads x lane-major and padded with +0.0 to whole blocks (see GemmRows): one copy,
    // T x cols floats, small next to the T x rows x cols multiply-adds.
    const int64_t nb = (w.cols + kDotLanes - 1) / kDotLanes;
    j.x_stride = nb * kDotLanes;
    x_lane_major.assign(static_cast<size_t>(T * j.x_stride), 0.0f);
    for (int64_t tok = 0; tok < T; ++tok) {
      const float* src = x + tok * w.cols;
      float* dst = &x_lane_major[static_cast<size_t>(tok * j.x_stride)];
      for (int64_t b = 0; b < nb; ++b)
        for (size_t k = 0; k < kK; ++k) {
          const int64_t i0 = b * kDotLanes + static_cast<int64_t>(k * kN);
          const int64_t n = std::clamp<int64_t>(w.cols - i0, 0, kN);
          std::memcpy(dst + LaneMajor(nb, b, k), src + i0, static_cast<size_t>(n) * sizeof(float));
        }
    }
    j.x = x_lane_major.data();
  }
  switch (w.dtype) {
    case DType::BF16:
      return RunLinear<Bf16>(j, pool);
    case DType::F16:
      return RunLinear<F16>(j, pool);
    default:
      return RunLinear<float>(j, pool);
  }
}

float DotLanesImpl(const float* a, const float* b, int64_t n) {
  const int64_t nfull = n - n % kDotLanes;
  const size_t rem = static_cast<size_t>(n - nfull);
  alignas(64) float at[kDotLanes], bt[kDotLanes];
  if (rem) {
    PadTailX(a + nfull, rem, at);
    PadTail(b + nfull, rem, bt);
  }
  // dot_lanes computes fma(a[i], b[i], acc): a plays x, b the weight row.
  const float* x[1] = {a};
  const float* w[1] = {b};
  const float* xt[1] = {at};
  const float* wt[1] = {bt};
  float res[1];
  DotBlock<1, 1, float>(w, x, nfull, rem ? wt : nullptr, xt, res);
  return res[0];
}

// acc[d] = acc[d] + p * v[d] for d < n: a separate multiply and add (the eager oracle's P.V step;
// simd.cpp is compiled with -ffp-contract=off so the compiler cannot fuse them either).
void AddScaledImpl(float* acc, float p, const float* v, int64_t n) {
  const DF d;
  const VF pv = hn::Set(d, p);
  int64_t i = 0;
  for (; i + static_cast<int64_t>(kN) <= n; i += kN)
    hn::StoreU(hn::Add(hn::LoadU(d, acc + i), hn::Mul(pv, hn::LoadU(d, v + i))), d, acc + i);
  for (; i < n; ++i) acc[i] = acc[i] + p * v[i];
}

// dots[b] = dot_lanes(q, keys + b * stride, n) for b < nk: four keys per DotBlock (q loaded once
// for four keys), each output with its own contract lanes, so every score is DotLanesImpl's.
void DotRowsImpl(const float* q, const float* keys, int64_t stride, int64_t nk, int64_t n,
                 float* dots) {
  const int64_t nfull = n - n % kDotLanes;
  const size_t rem = static_cast<size_t>(n - nfull);
  alignas(64) float qt[kDotLanes];
  alignas(64) float kt[4][kDotLanes];
  if (rem) PadTailX(q + nfull, rem, qt);
  const float* x[1] = {q};
  const float* xt[1] = {qt};
  int64_t b = 0;
  for (; b + 4 <= nk; b += 4) {
    const float* w[4];
    const float* wt[4];
    for (int i = 0; i < 4; ++i) {
      w[i] = keys + (b + i) * stride;
      if (rem) PadTail(w[i] + nfull, rem, kt[i]);
      wt[i] = kt[i];
    }
    DotBlock<4, 1, float>(w, x, nfull, rem ? wt : nullptr, xt, dots + b);
  }
  for (; b < nk; ++b) {
    const float* w[1] = {keys + b * stride};
    if (rem) PadTail(w[0] + nfull, rem, kt[0]);
    const float* wt[1] = {kt[0]};
    DotBlock<1, 1, float>(w, x, nfull, rem ? wt : nullptr, xt, dots + b);
  }
}

// acc[d] = acc[d] + p[b] * v[b * stride + d] for b = 0 .. nv - 1 in turn, d < n: AddScaledImpl per
// row in increasing b, with up to kPvVecs accumulator vectors held in registers across the rows.
constexpr size_t kPvVecs = 8;
void AddScaledRowsImpl(float* acc, const float* p, const float* v, int64_t stride, int64_t nv,
                       int64_t n) {
  const DF d;
  int64_t i = 0;
  for (; i + static_cast<int64_t>(kN) <= n;) {
    const size_t nvec =
        std::min<size_t>(kPvVecs, static_cast<size_t>((n - i) / static_cast<int64_t>(kN)));
    VF a[kPvVecs];
    for (size_t k = 0; k < nvec; ++k) a[k] = hn::LoadU(d, acc + i + k * kN);
    for (int64_t b = 0; b < nv; ++b) {
      const VF pv = hn::Set(d, p[b]);
      const float* vb = v + b * stride + i;
      for (size_t k = 0; k < nvec; ++k)
        a[k] = hn::Add(a[k], hn::Mul(pv, hn::LoadU(d, vb + k * kN)));
    }
    for (size_t k = 0; k < nvec; ++k) hn::StoreU(a[k], d, acc + i + k * kN);
    i += static_cast<int64_t>(nvec * kN);
  }
  for (; i < n; ++i)
    for (int64_t b = 0; b < nv; ++b) acc[i] = acc[i] + p[b] * v[b * stride + i];
}

// dst[i] = src[i] as fp32 for i < n (bf16 / f16: exact).
template <typename WT>
void ConvertRow(const WT* src, int64_t n, float* dst) {
  const DF d;
  int64_t i = 0;
  for (; i + static_cast<int64_t>(kN) <= n; i += kN) hn::StoreU(LoadW(d, src + i), d, dst + i);
  for (; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + i, 2);
    dst[i] = std::is_same_v<WT, Bf16> ? bf16_to_f32(h) : f16_to_f32(h);
  }
}
void Bf16ToF32Impl(const uint16_t* src, int64_t n, float* dst) {
  ConvertRow(reinterpret_cast<const Bf16*>(src), n, dst);
}
void F16ToF32Impl(const uint16_t* src, int64_t n, float* dst) {
  ConvertRow(reinterpret_cast<const F16*>(src), n, dst);
}

// Sum of p[0, n) (n a multiple of 4 kN), four independent chains; the result only keeps the loads
// from being optimised away.
float SumImpl(const float* p, size_t n) {
  const DF d;
  VF a0 = hn::Zero(d), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i < n; i += 4 * kN) {
    a0 = hn::Add(a0, hn::Load(d, p + i));
    a1 = hn::Add(a1, hn::Load(d, p + i + kN));
    a2 = hn::Add(a2, hn::Load(d, p + i + 2 * kN));
    a3 = hn::Add(a3, hn::Load(d, p + i + 3 * kN));
  }
  return hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
}

const char* TargetNameImpl() {
  return hwy::TargetName(HWY_TARGET);
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace fusecheck::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
