// The fused prefill projections on the tensor cores (split_gemm.cu) against their CPU twins
// (cpu::fused_rmsnorm_qkv, cpu::fused_gate_up_silu): a tolerance op, measured by NMSE over swept
// shapes, and the exactness of the bf16 split of x that makes the fp32 input survive the GEMM.
#include "cuda_testing.h"
#include "kernels/cpu/fused.h"

namespace fusecheck {
namespace {

using namespace cudatest;

float bits_f(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t f_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Splits x on the device; returns hi + mid + lo summed on the host as (hi + mid) + lo.
std::vector<float> split_sum(const std::vector<float>& x, std::vector<uint16_t>* pieces = nullptr) {
  const size_t n = x.size();
  Dev<float> dx(x);
  Dev<uint16_t> dp(3 * n);
  EXPECT_EQ(cu::split_bf16(dp.get(), dx.get(), int64_t(n), nullptr), 0);
  const std::vector<uint16_t> p = dp.host();
  std::vector<float> s(n);
  for (size_t i = 0; i < n; ++i)
    s[i] = (bf16_to_f32(p[i]) + bf16_to_f32(p[n + i])) + bf16_to_f32(p[2 * n + i]);
  if (pieces) *pieces = p;
  return s;
}

// Every mantissa of several exponents, both signs: hi + mid + lo == x bit for bit for
// 2^-110 <= |x| < 2^128 - 2^119; below, lo's bits fall into bf16's subnormals (the error stays
// under 2^-133 absolute); above, hi rounds to infinity; -0 sums to +0. The range is what the
// header documents.
TEST_F(CudaOps, BfloatSplitIsExact) {
  size_t checked = 0;
  for (uint32_t e : {17u, 18u, 40u, 100u, 126u, 127u, 128u, 150u, 200u, 253u, 254u})
    for (uint32_t sign : {0u, 1u}) {
      std::vector<float> x(size_t{1} << 23);
      for (uint32_t m = 0; m < (1u << 23); ++m) x[m] = bits_f(sign << 31 | e << 23 | m);
      std::vector<uint16_t> p;
      const std::vector<float> s = split_sum(x, &p);
      size_t exact = 0, overflow = 0, hi_ok = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        const bool top = e == 254 && (f_bits(x[i]) & 0x7fffffu) >= 0x7f8000u;
        if (top) {
          overflow += std::isinf(bf16_to_f32(p[i]));
          continue;
        }
        exact += f_bits(s[i]) == f_bits(x[i]);
        hi_ok += p[i] == f32_to_bf16(x[i]);  // hi is x rounded (the split, not just any sum)
      }
      const size_t top_n = e == 254 ? 0x8000 : 0;
      EXPECT_EQ(exact, x.size() - top_n) << "exponent " << e << " sign " << sign;
      EXPECT_EQ(overflow, top_n) << "exponent " << e;
      EXPECT_EQ(hi_ok, x.size() - top_n) << "exponent " << e;
      checked += x.size();
    }
  // Below the range: x = m · 2^-133 with fewer bits kept, so the absolute error stays < 2^-133.
  std::vector<float> tiny;
  for (uint32_t e : {0u, 1u, 8u, 16u})
    for (uint32_t m = 0; m < (1u << 23); m += 37) tiny.push_back(bits_f(e << 23 | m));
  const std::vector<float> s = split_sum(tiny);
  size_t inexact = 0;
  for (size_t i = 0; i < tiny.size(); ++i) {
    inexact += f_bits(s[i]) != f_bits(tiny[i]);
    EXPECT_LT(std::fabs(double(s[i]) - double(tiny[i])), std::ldexp(1.0, -133)) << tiny[i];
  }
  EXPECT_GT(inexact, 0u);  // the documented limit is real, not a pessimistic guess
  // Zeros and ordinary normalised activations.
  std::mt19937 g(31);
  std::vector<float> ord = {0.0f, -0.0f, 1.0f, -1.0f, 3.0e38f, -1.0e-33f};
  std::normal_distribution<float> d(0.0f, 3.0f);
  for (int i = 0; i < 100000; ++i) ord.push_back(d(g));
  std::vector<uint16_t> po;
  const std::vector<float> so = split_sum(ord, &po);
  for (size_t i = 0; i < ord.size(); ++i) {
    if (ord[i] == 0.0f) {  // -0: hi keeps the sign, hi + (+0) + (+0) is +0; a dot sees no sign
      EXPECT_EQ(so[i], 0.0f);
      EXPECT_EQ(po[i], std::signbit(ord[i]) ? 0x8000u : 0u);
      continue;
    }
    ASSERT_EQ(f_bits(so[i]), f_bits(ord[i])) << ord[i];
  }
  std::printf(
      "[split] %zu values over 22 exponent/sign sweeps exact; %zu of %zu below 2^-110 "
      "inexact (error < 2^-133)\n",
      checked, inexact, tiny.size());
}

struct Shape {
  int64_t dim, q_rows, kv_rows, ffn, T;
  bool bias;
};

std::vector<Shape> shapes() {
  std::vector<Shape> s = {{1024, 2048, 1024, 3072, 128, false}, {896, 896, 128, 4864, 37, true},
                          {65, 67, 33, 201, 9, true},           {65, 67, 33, 201, 8, false},
                          {200, 130, 70, 333, 300, false},      {513, 255, 129, 1001, 77, true},
                          {64, 64, 32, 200, 255, true}};
  return s;
}

struct GemmRun {
  cu::GemmContext* ctx;
  ActType act;
  cu::SplitGemm mode;
  double bound;
  double* worst;
  const char* mode_name() const { return mode == cu::SplitGemm::kStacked ? "stacked" : "beta1"; }
};

cu::DevWeight dw(const HostWeight& w, const Dev<uint8_t>& d) {
  return cu::DevWeight{cu::WType::BF16, d.get(), w.rows, w.cols};
}

// rmsnorm_qkv_gemm against cpu::fused_rmsnorm_qkv; returns the twin's fp32 normalised input.
std::vector<float> check_qkv(const GemmRun& run, const Shape& c, std::mt19937& g) {
  const auto x = randv(size_t(c.T * c.dim), g, ActType::BF16, 2.0f);
  const auto gain = randv(size_t(c.dim), g, ActType::BF16, 1.0f);
  HostWeight wq = rand_weight(DType::BF16, c.q_rows, c.dim, g, 0.03f);
  HostWeight wk = rand_weight(DType::BF16, c.kv_rows, c.dim, g, 0.03f);
  HostWeight wv = rand_weight(DType::BF16, c.kv_rows, c.dim, g, 0.03f);
  const auto bq = randv(size_t(c.q_rows), g, ActType::BF16, 0.1f);
  const auto bk = randv(size_t(c.kv_rows), g, ActType::BF16, 0.1f);
  const auto bv = randv(size_t(c.kv_rows), g, ActType::BF16, 0.1f);
  Dev<uint8_t> dwq(wq.bytes), dwk(wk.bytes), dwv(wv.bytes);
  Dev<float> dx(x), dgain(gain), dbq(bq), dbk(bk), dbv(bv);
  Dev<float> dq(size_t(c.T * c.q_rows)), dk(size_t(c.T * c.kv_rows)), dvv(size_t(c.T * c.kv_rows));
  std::vector<float> xn(size_t(c.T * c.dim));
  const int e = cu::rmsnorm_qkv_gemm(run.ctx, dq.get(), dk.get(), dvv.get(), dx.get(), c.T,
                                     dgain.get(), 1e-6f, dw(wq, dwq), dw(wk, dwk), dw(wv, dwv),
                                     c.bias ? dbq.get() : nullptr, c.bias ? dbk.get() : nullptr,
                                     c.bias ? dbv.get() : nullptr, to_cu(run.act), run.mode);
  EXPECT_EQ(e, 0) << cu::error_string(e);
  std::vector<float> q(size_t(c.T * c.q_rows)), k(size_t(c.T * c.kv_rows)), v(k.size());
  auto bw = [&](const std::vector<float>& b) {
    return c.bias ? cpu::Weight{DType::F32, b.data(), 1, int64_t(b.size())} : cpu::Weight{};
  };
  cpu::fused_rmsnorm_qkv(q.data(), k.data(), v.data(), x.data(), c.T, gain.data(), 1e-6f, cpu_w(wq),
                         cpu_w(wk), cpu_w(wv), bw(bq), bw(bk), bw(bv), run.act, xn.data(), nullptr);
  const std::string sh =
      shape_str("%s dim=%ld q=%ld kv=%ld T=%ld%s %s", act_name(run.act), long(c.dim),
                long(c.q_rows), long(c.kv_rows), long(c.T), c.bias ? " bias" : "", run.mode_name());
  for (auto [name, got, want] :
       {std::tuple{"qkv_gemm.q", dq.host(), q}, std::tuple{"qkv_gemm.k", dk.host(), k},
        std::tuple{"qkv_gemm.v", dvv.host(), v}}) {
    const Cmp r = compare(got, want);
    print(name, sh, r);
    EXPECT_LT(r.nmse, run.bound) << name << " " << sh;
    *run.worst = std::max(*run.worst, r.nmse);
  }
  return xn;
}

// gate_up_silu_gemm on the normalised fp32 input (not exact in bf16: three pieces) and on a
// bf16-rounded one (exact: one piece), against cpu::fused_gate_up_silu.
void check_gate_up(const GemmRun& run, const Shape& c, const std::vector<float>& xn,
                   std::mt19937& g) {
  HostWeight wg = rand_weight(DType::BF16, c.ffn, c.dim, g, 0.05f);
  HostWeight wu = rand_weight(DType::BF16, c.ffn, c.dim, g, 0.05f);
  Dev<uint8_t> dwg(wg.bytes), dwu(wu.bytes);
  const size_t F = size_t(c.T * c.ffn);
  std::vector<float> want(F), gs(F), us(F);
  const std::string sh = shape_str("%s dim=%ld ffn=%ld T=%ld %s", act_name(run.act), long(c.dim),
                                   long(c.ffn), long(c.T), run.mode_name());
  for (bool exact : {false, true}) {
    std::vector<float> xin = xn;
    if (exact)
      for (float& f : xin) f = cpu::round_one(ActType::BF16, f);
    Dev<float> dxin(xin), dout(F);
    CU_OK(cu::gate_up_silu_gemm(run.ctx, dout.get(), dxin.get(), c.T, dw(wg, dwg), dw(wu, dwu),
                                to_cu(run.act), exact, run.mode));
    cpu::fused_gate_up_silu(want.data(), xin.data(), c.T, cpu_w(wg), cpu_w(wu), run.act, gs.data(),
                            us.data(), nullptr);
    const Cmp r = compare(dout.host(), want);
    print(exact ? "gate_up_gemm.x1" : "gate_up_gemm.x3", sh, r);
    EXPECT_LT(r.nmse, run.bound) << sh;
    *run.worst = std::max(*run.worst, r.nmse);
    if (exact || run.act != ActType::F32) continue;
    // Control: the unrounded x through the one-piece path rounds it to bf16.
    CU_OK(cu::gate_up_silu_gemm(run.ctx, dout.get(), dxin.get(), c.T, dw(wg, dwg), dw(wu, dwu),
                                to_cu(run.act), true, run.mode));
    const Cmp ctl = compare(dout.host(), want);
    print("gate_up_gemm.ctl", sh + " x unsplit", ctl);
    EXPECT_GT(ctl.nmse, 1000 * run.bound) << "a plain bf16 GEMM passes too: " << sh;
  }
}

// Both GEMM layouts, bf16 and fp32 outputs. bf16 out: one-ulp flips where the tensor cores' fp32
// sum lands on the other side of a bf16 tie; fp32 out: the sums' order alone. The control case
// feeds the unrounded x to the 1-piece path (as if x were exact in bf16): it must be far off, or
// this test could not tell the split from a plain bf16 GEMM.
TEST_F(CudaOps, FusedPrefillGemmWithinTolerance) {
  std::mt19937 g(41);
  cu::GemmContext* ctx = cu::gemm_create(8, 64, nullptr);
  ASSERT_NE(ctx, nullptr);
  double worst_bf16 = 0, worst_f32 = 0;
  for (const Shape& c : shapes())
    for (ActType act : {ActType::BF16, ActType::F32})
      for (cu::SplitGemm mode : {cu::SplitGemm::kStacked, cu::SplitGemm::kBetaOne}) {
        const bool f32 = act == ActType::F32;
        const GemmRun run{ctx, act, mode, f32 ? 1e-11 : 1e-6, f32 ? &worst_f32 : &worst_bf16};
        const std::vector<float> xn = check_qkv(run, c, g);
        check_gate_up(run, c, xn, g);
      }
  std::printf("[split] worst NMSE: bf16 out %.3e, fp32 out %.3e\n", worst_bf16, worst_f32);
  cu::gemm_destroy(ctx);
}

// fp32 weights: an fp32 GEMM of the fp32 x (TF32 off), no split. f16 weights are refused.
TEST_F(CudaOps, FusedPrefillGemmFp32WeightsAndF16Refused) {
  std::mt19937 g(43);
  cu::GemmContext* ctx = cu::gemm_create(8, 64, nullptr);
  ASSERT_NE(ctx, nullptr);
  const int64_t dim = 96, rows = 130, T = 33;
  const auto x = randv(size_t(T * dim), g, ActType::F32, 2.0f);
  const auto gain = randv(size_t(dim), g, ActType::F32, 1.0f);
  HostWeight w = rand_weight(DType::F32, rows, dim, g, 0.05f);
  Dev<uint8_t> dw(w.bytes);
  Dev<float> dx(x), dgain(gain), dq(size_t(T * rows)), dk(size_t(T * rows)), dv(size_t(T * rows));
  const cu::DevWeight d{cu::WType::F32, dw.get(), rows, dim};
  CU_OK(cu::rmsnorm_qkv_gemm(ctx, dq.get(), dk.get(), dv.get(), dx.get(), T, dgain.get(), 1e-6f, d,
                             d, d, nullptr, nullptr, nullptr, cu::Act::F32));
  std::vector<float> q(size_t(T * rows)), k(q.size()), v(q.size()), xn(x.size());
  cpu::fused_rmsnorm_qkv(q.data(), k.data(), v.data(), x.data(), T, gain.data(), 1e-6f, cpu_w(w),
                         cpu_w(w), cpu_w(w), cpu::Weight{}, cpu::Weight{}, cpu::Weight{},
                         ActType::F32, xn.data(), nullptr);
  const Cmp r = compare(dq.host(), q);
  print("qkv_gemm.q", "f32 weights dim=96 q=130 T=33 f32", r);
  EXPECT_LT(r.nmse, 1e-11);
  Dev<float> dout(size_t(T * rows));
  CU_OK(cu::gate_up_silu_gemm(ctx, dout.get(), dx.get(), T, d, d, cu::Act::F32, false));
  std::vector<float> want(size_t(T * rows)), gs(want.size()), us(want.size());
  cpu::fused_gate_up_silu(want.data(), x.data(), T, cpu_w(w), cpu_w(w), ActType::F32, gs.data(),
                          us.data(), nullptr);
  const Cmp r2 = compare(dout.host(), want);
  print("gate_up_gemm", "f32 weights dim=96 ffn=130 T=33 f32", r2);
  EXPECT_LT(r2.nmse, 1e-11);
  const cu::DevWeight h{cu::WType::F16, dw.get(), rows, dim};
  EXPECT_NE(cu::gate_up_silu_gemm(ctx, dout.get(), dx.get(), T, h, h, cu::Act::F16, true), 0);
  EXPECT_NE(cu::rmsnorm_qkv_gemm(ctx, dq.get(), dk.get(), dv.get(), dx.get(), T, dgain.get(), 1e-6f,
                                 h, h, h, nullptr, nullptr, nullptr, cu::Act::F16),
            0);
  cu::gemm_destroy(ctx);
}

}  // namespace
}  // namespace fusecheck
