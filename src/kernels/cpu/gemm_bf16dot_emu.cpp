// The bf16-pair dot emulated in fp32 with Highway (every target; ReorderWidenMulAccumulate's
// portable form: the even and the odd products of each pair go to two fp32 FMA chains), for CPUs
// without AVX512-BF16. Its summation order differs from the definition's (gemm_bf16dot.h), so it
// agrees with the scalar reference by NMSE, not bit for bit.
#define HWY_COMPILE_ALL_ATTAINABLE

#include <cmath>
#include <cstring>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/gemm_bf16dot_emu.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/cpu/gemm_bf16dot_emu.h"
#include "util/half.h"

HWY_BEFORE_NAMESPACE();
namespace fusecheck::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// sum over pairs of x[i] * w[i], i < n (n a multiple of 32). x, w: [n] bf16 bit patterns.
HWY_INLINE float DotPairs(const uint16_t* x, const uint16_t* w, int64_t n) {
#if HWY_TARGET == HWY_SCALAR
  // One lane has no bf16 pair vector: the same two chains (even, odd products), per element.
  float sum0 = 0, sum1 = 0;
  for (int64_t i = 0; i < n; i += 2) {
    sum0 = std::fma(bf16_to_f32(x[i]), bf16_to_f32(w[i]), sum0);
    sum1 = std::fma(bf16_to_f32(x[i + 1]), bf16_to_f32(w[i + 1]), sum1);
  }
  return sum0 + sum1;
#else
  const hn::CappedTag<float, 16> df;
  const hn::Repartition<hwy::bfloat16_t, decltype(df)> dbf;
  const int64_t step = static_cast<int64_t>(hn::Lanes(dbf));
  auto sum0 = hn::Zero(df), sum1 = hn::Zero(df);
  const auto* xb = reinterpret_cast<const hwy::bfloat16_t*>(x);
  const auto* wb = reinterpret_cast<const hwy::bfloat16_t*>(w);
  for (int64_t i = 0; i < n; i += step)
    sum0 = hn::ReorderWidenMulAccumulate(df, hn::LoadU(dbf, xb + i), hn::LoadU(dbf, wb + i), sum0,
                                         sum1);
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(sum0, sum1)));
#endif
}

// res[t * rows + r] for t < T, r in [r0, r1): the raw dot (no bias, no rounding).
// x: [T, x_stride] bf16, zero padded to x_stride (a multiple of 32) >= cols; w: [rows, cols] bf16.
void DotRowsEmuImpl(const uint16_t* x, int64_t x_stride, int64_t T, const uint16_t* w, int64_t rows,
                    int64_t cols, int64_t r0, int64_t r1, float* res) {
  const int64_t full = cols - cols % 32;
  alignas(64) uint16_t tail[32];
  for (int64_t r = r0; r < r1; ++r) {
    const uint16_t* wr = w + r * cols;
    if (full < cols) {
      std::memset(tail, 0, sizeof(tail));
      std::memcpy(tail, wr + full, static_cast<size_t>(cols - full) * 2);
    }
    for (int64_t t = 0; t < T; ++t) {
      const uint16_t* xt = x + t * x_stride;
      float s = DotPairs(xt, wr, full);
      if (full < cols) s += DotPairs(xt + full, tail, 32);
      res[t * rows + r] = s;
    }
  }
}

const char* EmuTargetNameImpl() {
  return hwy::TargetName(HWY_TARGET);
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace fusecheck::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace fusecheck::cpu {

HWY_EXPORT(DotRowsEmuImpl);
HWY_EXPORT(EmuTargetNameImpl);

void bf16dot_rows_emulated(const uint16_t* x, int64_t x_stride, int64_t T, const uint16_t* w,
                           int64_t rows, int64_t cols, int64_t r0, int64_t r1, float* res) {
  HWY_DYNAMIC_DISPATCH(DotRowsEmuImpl)(x, x_stride, T, w, rows, cols, r0, r1, res);
}

const char* bf16dot_emulation_target() {
  return HWY_DYNAMIC_DISPATCH(EmuTargetNameImpl)();
}

}  // namespace fusecheck::cpu
#endif  // HWY_ONCE
