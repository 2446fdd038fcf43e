// The SIMD kernels (kernels/cpu/simd.h) against the scalar oracle (kernels/cpu/ops.h): bitwise
// equality on every Highway target this CPU supports, every weight dtype, misaligned pointers, with
// and without bias, every ActType and 1 to 3 threads. NaN results only need to be NaN on both sides
// (payloads may legitimately differ between std::fma and a hardware FMA's operand order).
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"
#include "util/half.h"

namespace fusecheck::cpu {
namespace {

// Restores Highway's normal target selection when a test ends, even on failure.
struct TargetScope {
  explicit TargetScope(int64_t target) { hwy::SetSupportedTargetsForTest(target); }
  ~TargetScope() { hwy::SetSupportedTargetsForTest(0); }
};

bool same_bits(float a, float b) {
  if (std::isnan(a) && std::isnan(b)) return true;
  return std::memcmp(&a, &b, sizeof(float)) == 0;
}

// Index of the first difference, or -1.
int64_t first_mismatch(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (!same_bits(a[i], b[i])) return static_cast<int64_t>(i);
  return -1;
}

// Values over a wide exponent range (so the lanes' roundings matter), some exact zeros.
float random_value(std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> expo(-12, 12), pick(0, 15);
  if (pick(rng) == 0) return 0.0f;
  return std::ldexp(normal(rng), expo(rng));
}

// A weight matrix in `dtype` stored `offset` elements past an aligned start (misaligned on
// purpose), owning its bytes.
struct TestWeight {
  std::vector<unsigned char> bytes;
  Weight w;
};

TestWeight make_weight(DType dtype, int64_t rows, int64_t cols, int offset, std::mt19937_64& rng,
                       bool special = false) {
  const size_t esize = dtype == DType::F32 ? 4 : 2;
  TestWeight tw;
  tw.bytes.assign((static_cast<size_t>(rows * cols) + 4) * esize + 64, 0);
  unsigned char* base = tw.bytes.data() + offset * esize;
  const float specials[] = {INFINITY, -INFINITY, NAN,   -0.0f,   1e-40f,
                            -1e-41f,  3e38f,     6e-8f, 65504.0f};
  std::uniform_int_distribution<int> pick(0, 40);
  for (int64_t i = 0; i < rows * cols; ++i) {
    float v = random_value(rng);
    if (special && pick(rng) < 9) v = specials[pick(rng) % 9];
    if (dtype == DType::BF16) {
      const uint16_t h = f32_to_bf16(v);
      std::memcpy(base + i * 2, &h, 2);
    } else if (dtype == DType::F16) {
      const uint16_t h = f32_to_f16(v);
      std::memcpy(base + i * 2, &h, 2);
    } else {
      std::memcpy(base + i * 4, &v, 4);
    }
  }
  tw.w = Weight{dtype, base, rows, cols};
  return tw;
}

std::vector<float> random_vector(size_t n, std::mt19937_64& rng) {
  std::vector<float> v(n);
  for (auto& f : v) f = random_value(rng);
  return v;
}

struct Pools {
  ThreadPool p2{2}, p3{3};
  ThreadPool* get(int threads) { return threads == 2 ? &p2 : threads == 3 ? &p3 : nullptr; }
};

const DType kDtypes[] = {DType::BF16, DType::F16, DType::F32};
const ActType kActs[] = {ActType::F32, ActType::BF16, ActType::F16};

std::string describe(DType d, int64_t rows, int64_t cols, int64_t T, ActType a, bool bias,
                     int threads, int offset) {
  return "dtype " + std::string(dtype_name(d)) + " rows " + std::to_string(rows) + " cols " +
         std::to_string(cols) + " T " + std::to_string(T) + " act " +
         std::to_string(static_cast<int>(a)) + " bias " + std::to_string(bias) + " threads " +
         std::to_string(threads) + " offset " + std::to_string(offset);
}

// One linear_simd call against cpu::linear; returns false (after a gtest failure) on a mismatch.
bool check_linear(DType dtype, int64_t rows, int64_t cols, int64_t T, ActType act, bool with_bias,
                  int threads, int offset, Pools& pools, std::mt19937_64& rng,
                  bool special = false) {
  const TestWeight w = make_weight(dtype, rows, cols, offset, rng, special);
  TestWeight b;
  if (with_bias) b = make_weight(dtype, 1, rows, (offset + 1) % 4, rng, special);
  // x misaligned by `offset` floats too.
  std::vector<float> xbuf(static_cast<size_t>(T * cols) + 4);
  const auto xv = random_vector(static_cast<size_t>(T * cols), rng);
  std::copy(xv.begin(), xv.end(), xbuf.begin() + offset);
  const float* x = xbuf.data() + offset;
  std::vector<float> ref(static_cast<size_t>(T * rows)), got(ref.size(), 12345.0f);
  std::vector<float> scratch(static_cast<size_t>(cols) + 1);
  linear(ref.data(), x, T, w.w, b.w, act, scratch.data());
  linear_simd(got.data(), x, T, w.w, b.w, act, pools.get(threads));
  const int64_t bad = first_mismatch(ref, got);
  if (bad < 0) return true;
  ADD_FAILURE() << "target " << simd_target_name() << ", "
                << describe(dtype, rows, cols, T, act, with_bias, threads, offset)
                << ": first mismatch at out[" << bad / rows << ", " << bad % rows << "]: scalar "
                << ref[bad] << " simd " << got[bad];
  return false;
}

TEST(SimdTargets, SeveralTargetsAreTested) {
  const auto targets = simd_targets();
  ASSERT_FALSE(targets.empty());
  std::string names;
  for (int64_t t : targets) names += std::string(hwy::TargetName(t)) + " ";
  std::cout << "[          ] Highway targets tested: " << names << "\n";
  // The scalar fallback is always compiled and supported.
  EXPECT_EQ(targets.back(), HWY_SCALAR) << names;
}

// Every cols from 1 to 300 (all tails, all multiples of 8 and 32), per target and dtype, cycling
// rows, T, act, bias, threads and misalignment.
TEST(SimdLinear, ColsSweepBitIdentical) {
  Pools pools;
  std::mt19937_64 rng(1);
  for (int64_t target : simd_targets()) {
    TargetScope scope(target);
    for (DType dtype : kDtypes) {
      int i = 0;
      for (int64_t cols = 1; cols <= 300; ++cols, ++i) {
        const int64_t rows = 1 + i % 7, T = 1 + (i / 3) % 9;
        if (!check_linear(dtype, rows, cols, T, kActs[i % 3], i % 2 == 0, 1 + i % 3, i % 4, pools,
                          rng))
          return;
      }
    }
  }
}

// Every rows from 1 to 70 (chunk and register-block remainders) and every T from 1 to 9.
TEST(SimdLinear, RowsAndTokensSweepBitIdentical) {
  Pools pools;
  std::mt19937_64 rng(2);
  const int64_t cols_set[] = {8, 32, 33, 64, 95, 128, 257};
  for (int64_t target : simd_targets()) {
    TargetScope scope(target);
    int i = 0;
    for (DType dtype : kDtypes)
      for (int64_t rows = 1; rows <= 70; ++rows, ++i)
        if (!check_linear(dtype, rows, cols_set[i % 7], 1 + i % 9, kActs[(i / 2) % 3], i % 3 == 0,
                          1 + (i / 5) % 3, (i / 7) % 4, pools, rng))
          return;
  }
}

// Random combinations of every parameter.
TEST(SimdLinear, RandomConfigurationsBitIdentical) {
  Pools pools;
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int64_t> rows_d(1, 70), cols_d(1, 300), t_d(1, 9);
  std::uniform_int_distribution<int> small(0, 11);
  for (int64_t target : simd_targets()) {
    TargetScope scope(target);
    for (int i = 0; i < 120; ++i) {
      const int s = small(rng);
      if (!check_linear(kDtypes[s % 3], rows_d(rng), cols_d(rng), t_d(rng), kActs[small(rng) % 3],
                        s % 2 == 0, 1 + small(rng) % 3, small(rng) % 4, pools, rng))
        return;
    }
  }
}

// A model-sized layer (Qwen3-0.6B's hidden size) on the dispatched target: decode and prefill.
TEST(SimdLinear, ModelShapeBitIdentical) {
  Pools pools;
  std::mt19937_64 rng(4);
  for (DType dtype : kDtypes)
    for (int64_t T : {1, 13})
      ASSERT_TRUE(check_linear(dtype, 200, 1024, T, ActType::BF16, false, 2, 1, pools, rng));
  ASSERT_TRUE(check_linear(DType::BF16, 100, 3072, 6, ActType::BF16, true, 3, 0, pools, rng));
}

// Inf, NaN, subnormals, -0 and huge values in weights and bias.
TEST(SimdLinear, SpecialValuesMatch) {
  Pools pools;
  std::mt19937_64 rng(5);
  for (int64_t target : simd_targets()) {
    TargetScope scope(target);
    int i = 0;
    for (DType dtype : kDtypes)
      for (int64_t cols : {1, 7, 31, 32, 45, 77})
        for (int64_t T : {1, 4}) {
          ++i;
          if (!check_linear(dtype, 9, cols, T, kActs[i % 3], i % 2 == 0, 1 + i % 3, i % 4, pools,
                            rng, /*special=*/true))
            return;
        }
  }
}

// Products that underflow to -0: every lane ends at -0 and the tail's untouched lanes must stay -0
// (the kernels pad with +0 x -0 so that fma(+0, -0, -0) = -0, not +0).
TEST(SimdLinear, NegativeZeroLanesSurviveTails) {
  Pools pools;
  for (int64_t target : simd_targets()) {
    TargetScope scope(target);
    for (int64_t cols : {32, 33, 40, 63, 64, 65, 100}) {  // >= 32: every lane holds a -0
      for (int64_t T : {1, 5}) {
        std::vector<float> x(static_cast<size_t>(T * cols), -1e-30f);
        std::vector<float> wv(static_cast<size_t>(3 * cols), 1e-30f);
        const Weight w{DType::F32, wv.data(), 3, cols};
        std::vector<float> ref(static_cast<size_t>(3 * T)), got(ref.size());
        std::vector<float> scratch(static_cast<size_t>(cols));
        linear(ref.data(), x.data(), T, w, Weight{}, ActType::F32, scratch.data());
        linear_simd(got.data(), x.data(), T, w, Weight{}, ActType::F32, pools.get(2));
        ASSERT_TRUE(std::signbit(ref[0])) << "the oracle should produce -0 here";
        ASSERT_EQ(first_mismatch(ref, got), -1) << simd_target_name() << " cols " << cols;
      }
    }
  }
}

TEST(SimdDot, MatchesDotLanesAllSizesAndAlignments) {
  std::mt19937_64 rng(6);
  for (int64_t target : simd_targets()) {
    TargetScope scope(target);
    for (int64_t n = 0; n <= 300; ++n) {
      const int oa = static_cast<int>(n % 4), ob = static_cast<int>((n / 4) % 4);
      std::vector<float> a(static_cast<size_t>(n) + 4), b(static_cast<size_t>(n) + 4);
      for (int64_t i = 0; i < n; ++i) {
        a[oa + i] = random_value(rng);
        b[ob + i] = random_value(rng);
      }
      const float ref = dot_lanes(a.data() + oa, b.data() + ob, n);
      const float got = dot_lanes_simd(a.data() + oa, b.data() + ob, n);
      ASSERT_TRUE(same_bits(ref, got))
          << simd_target_name() << " n " << n << ": scalar " << ref << " simd " << got;
    }
  }
}

TEST(SimdAttention, MatchesAttentionHead) {
  std::mt19937_64 rng(7);
  for (int64_t target : simd_targets()) {
    TargetScope scope(target);
    int i = 0;
    // 257: more than one block of P.V accumulators held in registers (8 vectors) and a tail;
    // n_ctx 70: two whole tiles of 32 rows, then a tile of 6 (a 4-key dot block and 2 singles).
    for (int64_t head_dim : {1, 3, 8, 17, 64, 100, 128, 257})
      for (int64_t n_ctx : {1, 2, 7, 33, 70}) {
        const ActType act = kActs[i++ % 3];
        const int64_t stride = head_dim * 3 + 1;  // k/v heads interleaved, misaligned rows
        auto q = random_vector(static_cast<size_t>(head_dim), rng);
        auto keys = random_vector(static_cast<size_t>(n_ctx * stride), rng);
        auto values = random_vector(static_cast<size_t>(n_ctx * stride), rng);
        for (auto& v : q) v = round_one(act, v * 0.1f);
        std::vector<float> ref(static_cast<size_t>(head_dim)), got(ref.size());
        std::vector<float> s1(static_cast<size_t>(n_ctx)), s2(s1.size());
        const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
        attention_head(ref.data(), q.data(), keys.data(), values.data(), n_ctx, stride, head_dim,
                       scale, act, s1.data());
        attention_head_simd(got.data(), q.data(), keys.data(), values.data(), n_ctx, stride,
                            head_dim, scale, act, s2.data());
        ASSERT_EQ(first_mismatch(ref, got), -1)
            << simd_target_name() << " head_dim " << head_dim << " n_ctx " << n_ctx;
      }
  }
}

TEST(SimdBandwidth, ProbeReturnsAPositiveRate) {
  ThreadPool pool(2);
  const double gbs = measure_read_bandwidth_gbs(&pool, size_t{16} << 20, 2);
  EXPECT_GT(gbs, 0.1);
  EXPECT_LT(gbs, 10000.0);
  EXPECT_GT(measure_read_bandwidth_gbs(nullptr, 4096, 1), 0.0);
}

}  // namespace
}  // namespace fusecheck::cpu
