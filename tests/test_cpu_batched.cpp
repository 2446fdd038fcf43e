// The batched row ops (kernels/cpu/batched.h) against the per-row scalar oracle
// (kernels/cpu/ops.h): bitwise equality for every ActType, swept row counts (odd, below and above
// the 8-row group) and odd widths, in place and not, with special values (NaN, ±Inf, ±0,
// subnormals) mixed in. NaN results only need to be NaN on both sides.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/batched.h"
#include "kernels/cpu/ops.h"

namespace fusecheck::cpu {
namespace {

constexpr ActType kActs[] = {ActType::F32, ActType::BF16, ActType::F16};

bool same_bits(float a, float b) {
  if (std::isnan(a) && std::isnan(b)) return true;
  return std::memcmp(&a, &b, sizeof(float)) == 0;
}

void expect_same(const std::vector<float>& got, const std::vector<float>& want,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_TRUE(same_bits(got[i], want[i]))
        << what << ": element " << i << " got " << got[i] << " want " << want[i];
}

// n values over a wide exponent range rounded to t; with `special`, about 1 in 40 is a special
// value.
std::vector<float> values(size_t n, std::mt19937& rng, ActType t, bool special) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> expo(-6, 6), pick(0, 79);
  const float specials[] = {INFINITY, -INFINITY, NAN, -0.0f, 0.0f, 1e-40f, -1e-41f, 3e38f};
  std::vector<float> v(n);
  for (float& x : v) {
    const int p = pick(rng);
    x = special && p < 8 && pick(rng) < 20 ? specials[p] : std::ldexp(normal(rng), expo(rng));
    x = round_one(t, x);
  }
  return v;
}

const char* name(ActType t) {
  return t == ActType::F32 ? "f32" : t == ActType::BF16 ? "bf16" : "f16";
}

TEST(CpuBatched, InvRmsRowsMatchesInvRms) {
  std::mt19937 rng(11);
  for (int64_t rows : {1, 3, 7, 8, 9, 16, 17, 31})
    for (int64_t n : {1, 3, 17, 128, 1023}) {
      const auto x = values(static_cast<size_t>(rows * n), rng, ActType::F32, rows % 2 == 1);
      std::vector<float> got(static_cast<size_t>(rows)), want(got.size());
      inv_rms_rows(x.data(), rows, n, 1e-6f, got.data());
      for (int64_t r = 0; r < rows; ++r)
        want[static_cast<size_t>(r)] = inv_rms(x.data() + r * n, n, 1e-6f);
      expect_same(got, want, "inv_rms rows " + std::to_string(rows) + " n " + std::to_string(n));
    }
}

TEST(CpuBatched, RmsnormRowsMatchesRmsnormPerRow) {
  std::mt19937 rng(12);
  for (ActType t : kActs)
    for (int64_t rows : {1, 5, 8, 13, 24, 33})
      for (int64_t n : {1, 7, 64, 129, 1024})
        for (bool in_place : {false, true}) {
          const auto x = values(static_cast<size_t>(rows * n), rng, t, rows == 13);
          const auto gain = values(static_cast<size_t>(n), rng, ActType::F32, false);
          std::vector<float> want(x.size());
          for (int64_t r = 0; r < rows; ++r)
            rmsnorm(want.data() + r * n, x.data() + r * n, gain.data(), n, 1e-6f, t);
          std::vector<float> got = x, out(x.size());
          float* dst = in_place ? got.data() : out.data();
          rmsnorm_rows(dst, got.data(), gain.data(), rows, n, 1e-6f, t);
          expect_same(in_place ? got : out, want,
                      std::string("rmsnorm ") + name(t) + " rows " + std::to_string(rows) + " n " +
                          std::to_string(n) + (in_place ? " in place" : ""));
        }
}

// The standard path's q/k norm and RoPE as the CPU backend computed it before it was batched:
// per token, cos/sin rounded to t, then per head rmsnorm and rope_rotate_half.
void qk_norm_rope_oracle(float* x, int64_t T, int64_t nh, int64_t hd, const float* gain, float eps,
                         const float* cos, const float* sin, ActType t) {
  const int64_t half = hd / 2;
  std::vector<float> c(static_cast<size_t>(half)), s(c.size());
  for (int64_t tok = 0; tok < T; ++tok) {
    for (int64_t i = 0; i < half; ++i)
      c[static_cast<size_t>(i)] = round_one(t, cos[tok * half + i]),
      s[static_cast<size_t>(i)] = round_one(t, sin[tok * half + i]);
    for (int64_t h = 0; h < nh; ++h) {
      float* xh = x + (tok * nh + h) * hd;
      if (gain) rmsnorm(xh, xh, gain, hd, eps, t);
      rope_rotate_half(xh, hd, c.data(), s.data(), t);
    }
  }
}

TEST(CpuBatched, QkNormRopeRowsMatchesPerTokenPerHead) {
  std::mt19937 rng(13);
  for (ActType t : kActs)
    for (int64_t T : {1, 3, 9})
      for (int64_t nh : {1, 3, 8})
        for (int64_t hd : {2, 6, 64, 130})
          for (bool with_gain : {false, true}) {
            const int64_t half = hd / 2;
            const auto x = values(static_cast<size_t>(T * nh * hd), rng, t, T == 3);
            const auto gain = values(static_cast<size_t>(hd), rng, ActType::F32, false);
            std::vector<float> cs(static_cast<size_t>(T * half)), sn(cs.size());
            for (size_t i = 0; i < cs.size(); ++i)  // angles of any size, unrounded fp32
              cs[i] = std::cos(0.37f * static_cast<float>(i)),
              sn[i] = std::sin(0.37f * static_cast<float>(i));
            std::vector<float> want = x, got = x, scratch(static_cast<size_t>(hd));
            const float* g = with_gain ? gain.data() : nullptr;
            qk_norm_rope_oracle(want.data(), T, nh, hd, g, 1e-6f, cs.data(), sn.data(), t);
            qk_norm_rope_rows(got.data(), T, nh, hd, g, 1e-6f, cs.data(), sn.data(), t,
                              scratch.data());
            expect_same(got, want,
                        std::string("qk_norm_rope ") + name(t) + " T " + std::to_string(T) +
                            " heads " + std::to_string(nh) + " hd " + std::to_string(hd) +
                            (with_gain ? " gain" : ""));
          }
}

TEST(CpuBatched, AddAndSiluMulRowsMatchOracle) {
  std::mt19937 rng(14);
  for (ActType t : kActs)
    for (int64_t n : {1, 5, 31, 1000, 3073}) {
      const auto a = values(static_cast<size_t>(n), rng, t, true);
      const auto b = values(static_cast<size_t>(n), rng, t, true);
      std::vector<float> got(a.size()), want(a.size());
      add(want.data(), a.data(), b.data(), a.size(), t);
      add_rows(got.data(), a.data(), b.data(), n, t);
      expect_same(got, want, std::string("add ") + name(t) + " n " + std::to_string(n));
      silu_mul(want.data(), a.data(), b.data(), a.size(), t);
      silu_mul_rows(got.data(), a.data(), b.data(), n, t);
      expect_same(got, want, std::string("silu_mul ") + name(t) + " n " + std::to_string(n));
    }
}

}  // namespace
}  // namespace fusecheck::cpu
