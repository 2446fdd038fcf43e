// Every CUDA op against its CPU twin (src/kernels/cpu/*) over swept sizes, in the spirit of
// llama.cpp's test-backend-ops. Each case prints a line "[nmse] op shape nmse=… mismatches=…";
// ops on the dot-product contract or pure elementwise arithmetic must be bit-identical, the others
// (tensor-core GEMM, split softmax) get tolerances. Skips when no GPU is present.
#include <tuple>

#include "cuda_testing.h"
#include "kernels/cpu/fused.h"

namespace fusecheck {
namespace {

using namespace fusecheck::cudatest;
namespace cu = fusecheck::cuda;
using cpu::ActType;

TEST_F(CudaOps, GemvIsBitIdenticalToCpuLinear) {
  struct Case {
    int64_t rows, cols, T;
  };
  const Case cases[] = {{1, 32, 1},      {7, 100, 1},     {64, 1024, 1}, {333, 1000, 2},
                        {2048, 1024, 1}, {1024, 3072, 1}, {5, 4104, 3},  {151, 24, 1}};
  std::mt19937 g(11);
  int k = 0;
  for (DType dt : {DType::BF16, DType::F16, DType::F32})
    for (const Case& c : cases)
      for (int misalign = 0; misalign < 2; ++misalign, ++k) {
        const ActType act = k % 3 == 2 ? ActType::F32 : ActType::BF16;
        const bool with_bias = k % 2 == 1;
        HostWeight w = rand_weight(dt, c.rows, c.cols, g, 0.05f);
        const auto x = randv(size_t(c.T * c.cols), g, ActType::BF16);
        const auto bias = randv(size_t(c.rows), g, ActType::BF16, 0.1f);
        // A weight one element past a 16-byte boundary takes the element-load path.
        const size_t off = misalign ? dtype_size(dt) : 0;
        Dev<uint8_t> dw(w.bytes.size() + 16);
        CU_OK(cu::copy_to_device(dw.get() + off, w.bytes.data(), w.bytes.size() - 16));
        Dev<float> dx(x), db(bias), dout(size_t(c.T * c.rows));
        const cu::DevWeight dwt{wtype(dt), dw.get() + off, c.rows, c.cols};
        std::vector<float> want(size_t(c.T * c.rows)), scratch(size_t(c.cols));
        const cpu::Weight bw =
            with_bias ? cpu::Weight{DType::F32, bias.data(), 1, c.rows} : cpu::Weight{};
        cpu::linear(want.data(), x.data(), c.T, cpu_w(w), bw, act, scratch.data());
        for (int vi = 1; vi <= 3; ++vi) {                  // every load schedule: same arithmetic
          dout.put(std::vector<float>(want.size(), NAN));  // poison: every output must be written
          CU_OK(cu::gemv(dout.get(), dx.get(), c.T, dwt, with_bias ? db.get() : nullptr, to_cu(act),
                         nullptr, static_cast<cu::GemvVariant>(vi)));
          const Cmp r = compare(dout.host(), want);
          print("gemv",
                shape_str("%s [%ld,%ld] T=%ld %s%s%s v%d", std::string(dtype_name(dt)).c_str(),
                          long(c.rows), long(c.cols), long(c.T), act_name(act),
                          with_bias ? " bias" : "", misalign ? " unaligned" : "", vi),
                r);
          EXPECT_EQ(r.mismatches, 0u) << "rows " << c.rows << " cols " << c.cols;
        }
      }
}

TEST_F(CudaOps, RmsnormAndAddMatchCpu) {
  std::mt19937 g(12);
  for (ActType act : {ActType::BF16, ActType::F32})
    for (int64_t n : {64, 128, 1000, 1024, 3072}) {
      const int64_t rows = 5;
      const auto x = randv(size_t(rows * n), g, act, 3.0f);
      const auto gain = randv(size_t(n), g, ActType::BF16, 1.0f);
      Dev<float> dx(x), dg(gain), dout(x.size());
      CU_OK(cu::rmsnorm(dout.get(), dx.get(), dg.get(), rows, n, 1e-6f, to_cu(act), nullptr));
      std::vector<float> want(x.size());
      for (int64_t r = 0; r < rows; ++r)
        cpu::rmsnorm(&want[size_t(r * n)], &x[size_t(r * n)], gain.data(), n, 1e-6f, act);
      Cmp c = compare(dout.host(), want);
      print("rmsnorm", shape_str("[%ld,%ld] %s", long(rows), long(n), act_name(act)), c);
      EXPECT_EQ(c.mismatches, 0u);

      const auto y = randv(x.size(), g, act);
      Dev<float> dy(y);
      CU_OK(cu::add(dout.get(), dx.get(), dy.get(), int64_t(x.size()), to_cu(act), nullptr));
      cpu::add(want.data(), x.data(), y.data(), x.size(), act);
      c = compare(dout.host(), want);
      print("add", shape_str("[%zu] %s", x.size(), act_name(act)), c);
      EXPECT_EQ(c.mismatches, 0u);
    }
}

TEST_F(CudaOps, SiluMulMatchesCpu) {
  std::mt19937 g(13);
  for (ActType act : {ActType::BF16, ActType::F32}) {
    const size_t n = 1 << 16;
    auto gate = randv(n, g, act, 4.0f);
    const auto up = randv(n, g, act);
    Dev<float> dgate(gate), dup(up), dout(n);
    CU_OK(cu::silu_mul(dout.get(), dgate.get(), dup.get(), int64_t(n), to_cu(act), nullptr));
    std::vector<float> want(n);
    cpu::silu_mul(want.data(), gate.data(), up.data(), n, act);
    const Cmp c = compare(dout.host(), want);
    print("silu_mul", shape_str("[%zu] %s", n, act_name(act)), c);
    // exp is libm's on the CPU and CUDA's double exp here: rare last-bit differences at most.
    EXPECT_LE(c.mismatches, n / 1000);
    EXPECT_LT(c.max_rel, act == ActType::F32 ? 1e-6 : 1e-2);
  }
}

// cos/sin tables as the CPU's Rope::cos_sin computes them before rounding: [max_pos, half].
void rope_tables(int64_t max_pos, int64_t head_dim, std::vector<float>& cs,
                 std::vector<float>& sn) {
  const int64_t half = head_dim / 2;
  cs.resize(size_t(max_pos * half));
  sn.resize(cs.size());
  for (int64_t p = 0; p < max_pos; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const float inv_freq = 1.0f / std::pow(1e6f, float(2 * i) / float(head_dim));
      const float angle = inv_freq * float(p);
      cs[size_t(p * half + i)] = float(std::cos(double(angle)));
      sn[size_t(p * half + i)] = float(std::sin(double(angle)));
    }
}

TEST_F(CudaOps, RopeAndQkNormRopeMatchCpu) {
  std::mt19937 g(14);
  const int64_t max_pos = 4096, pos0 = 1000;
  for (int64_t head_dim : {64, 128})
    for (ActType act : {ActType::BF16, ActType::F32}) {
      std::vector<float> cs, sn;
      rope_tables(max_pos, head_dim, cs, sn);
      const int64_t T = 3, heads = 4, half = head_dim / 2, n = T * heads * head_dim;
      const auto x = randv(size_t(n), g, act, 2.0f);
      const auto gain = randv(size_t(head_dim), g, ActType::BF16, 1.5f);
      Dev<float> dcs(cs), dsn(sn), dgain(gain), dx(x);
      Dev<int32_t> dpos(std::vector<int32_t>{int32_t(pos0)});
      CU_OK(cu::rope(dx.get(), T, heads, head_dim, dcs.get(), dsn.get(), dpos.get(), to_cu(act),
                     nullptr));
      std::vector<float> want = x, c(static_cast<size_t>(half)), s(static_cast<size_t>(half));
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t i = 0; i < half; ++i) {
          c[size_t(i)] = cpu::round_one(act, cs[size_t((pos0 + t) * half + i)]);
          s[size_t(i)] = cpu::round_one(act, sn[size_t((pos0 + t) * half + i)]);
        }
        for (int64_t h = 0; h < heads; ++h)
          cpu::rope_rotate_half(&want[size_t((t * heads + h) * head_dim)], head_dim, c.data(),
                                s.data(), act);
      }
      Cmp r = compare(dx.host(), want);
      print("rope",
            shape_str("T=%ld heads=%ld hd=%ld %s", long(T), long(heads), long(head_dim),
                      act_name(act)),
            r);
      EXPECT_EQ(r.mismatches, 0u);

      for (bool with_gain : {true, false}) {
        dx.put(x);
        CU_OK(cu::qk_norm_rope(dx.get(), T, heads, head_dim, with_gain ? dgain.get() : nullptr,
                               1e-6f, dcs.get(), dsn.get(), dpos.get(), to_cu(act), nullptr));
        want = x;
        for (int64_t t = 0; t < T; ++t)
          cpu::fused_qk_norm_rope(&want[size_t(t * heads * head_dim)], heads, head_dim,
                                  with_gain ? gain.data() : nullptr, 1e-6f,
                                  &cs[size_t((pos0 + t) * half)], &sn[size_t((pos0 + t) * half)],
                                  act);
        r = compare(dx.host(), want);
        print("qk_norm_rope",
              shape_str("T=%ld heads=%ld hd=%ld %s%s", long(T), long(heads), long(head_dim),
                        act_name(act), with_gain ? " norm" : ""),
              r);
        EXPECT_EQ(r.mismatches, 0u);
        // q and k in one launch: x as q, then x's first head as a one-head k (the same gain, so
        // each must equal its one-tensor result, `want`, bit for bit).
        const std::vector<float> want_q = want;
        std::vector<float> k1(size_t(T * head_dim)), want_k(k1.size());
        for (int64_t t = 0; t < T; ++t)
          for (int64_t i = 0; i < head_dim; ++i) {
            k1[size_t(t * head_dim + i)] = x[size_t(t * heads * head_dim + i)];
            want_k[size_t(t * head_dim + i)] = want_q[size_t(t * heads * head_dim + i)];
          }
        Dev<float> dk(k1);
        dx.put(x);
        CU_OK(cu::qk_norm_rope_pair(dx.get(), heads, with_gain ? dgain.get() : nullptr, dk.get(), 1,
                                    with_gain ? dgain.get() : nullptr, T, head_dim, 1e-6f,
                                    dcs.get(), dsn.get(), dpos.get(), to_cu(act), nullptr));
        const Cmp rq = compare(dx.host(), want_q), rk = compare(dk.host(), want_k);
        print("qk_norm_rope_pair",
              shape_str("T=%ld heads=%ld+1 hd=%ld %s%s", long(T), long(heads), long(head_dim),
                        act_name(act), with_gain ? " norm" : ""),
              rq);
        EXPECT_EQ(rq.mismatches, 0u);
        EXPECT_EQ(rk.mismatches, 0u);
      }
    }
}

// qk_norm_rope_kv_append: q and k as qk_norm_rope_pair gives them and both cache sides as
// kv_append_pair stores the rotated keys and the values, bit for bit (every byte of the caches,
// poisoned first), and q and k against the CPU's fused_qk_norm_rope; fp32, bf16 and fp16 caches,
// 16 q and 8 kv heads of 128 (the 0.6B shape), T = 1 and 3.
TEST_F(CudaOps, QkNormRopeKvAppendEqualsPairAndAppend) {
  std::mt19937 g(24);
  const int64_t max_pos = 64, pos0 = 9, hd = 128, qh = 16, kh = 8, kv_dim = kh * hd, half = hd / 2;
  std::vector<float> cs, sn;
  rope_tables(max_pos, hd, cs, sn);
  const auto gq = randv(size_t(hd), g, ActType::BF16, 1.5f);
  const auto gk = randv(size_t(hd), g, ActType::BF16, 1.5f);
  Dev<float> dcs(cs), dsn(sn), dgq(gq), dgk(gk);
  Dev<int32_t> dpos(std::vector<int32_t>{int32_t(pos0)});
  for (cu::KvType kt : {cu::KvType::F32, cu::KvType::BF16, cu::KvType::F16})
    for (int64_t T : {1, 3}) {
      const ActType act = kt == cu::KvType::F32 ? ActType::F32 : ActType::BF16;
      const auto q = randv(size_t(T * qh * hd), g, act, 2.0f);
      const auto k = randv(size_t(T * kv_dim), g, act, 2.0f);
      const auto v = randv(size_t(T * kv_dim), g, act, 1.0f);
      const std::vector<uint8_t> poison(size_t(max_pos * kv_dim) * (kt == cu::KvType::F32 ? 4 : 2),
                                        0x7f);
      Dev<uint8_t> k1c(poison), v1c(poison), k2c(poison), v2c(poison);
      Dev<float> dq1(q), dk1(k), dq2(q), dk2(k), dv(v);
      const cu::KvView k1{kt, k1c.get(), nullptr, false}, v1{kt, v1c.get(), nullptr, false};
      const cu::KvView k2{kt, k2c.get(), nullptr, false}, v2{kt, v2c.get(), nullptr, false};
      CU_OK(cu::qk_norm_rope_pair(dq1.get(), qh, dgq.get(), dk1.get(), kh, dgk.get(), T, hd, 1e-6f,
                                  dcs.get(), dsn.get(), dpos.get(), to_cu(act), nullptr));
      CU_OK(cu::kv_append_pair(k1, dk1.get(), v1, dv.get(), T, kv_dim, dpos.get(), nullptr));
      CU_OK(cu::qk_norm_rope_kv_append(dq2.get(), qh, dgq.get(), dk2.get(), kh, dgk.get(), dv.get(),
                                       k2, v2, T, hd, 1e-6f, dcs.get(), dsn.get(), dpos.get(),
                                       to_cu(act), nullptr));
      std::vector<float> wq = q, wk = k;
      for (int64_t t = 0; t < T; ++t) {
        const float* c = &cs[size_t((pos0 + t) * half)];
        const float* s = &sn[size_t((pos0 + t) * half)];
        cpu::fused_qk_norm_rope(&wq[size_t(t * qh * hd)], qh, hd, gq.data(), 1e-6f, c, s, act);
        cpu::fused_qk_norm_rope(&wk[size_t(t * kv_dim)], kh, hd, gk.data(), 1e-6f, c, s, act);
      }
      const std::string sh = shape_str("T=%ld %s cache=%d", long(T), act_name(act), int(kt));
      const Cmp rq = compare(dq2.host(), wq), rk = compare(dk2.host(), wk);
      print("qk_rope_append.q", sh, rq);
      print("qk_rope_append.k", sh, rk);
      EXPECT_EQ(rq.mismatches, 0u) << sh;
      EXPECT_EQ(rk.mismatches, 0u) << sh;
      EXPECT_EQ(compare(dq2.host(), dq1.host()).mismatches, 0u) << sh;
      EXPECT_EQ(compare(dk2.host(), dk1.host()).mismatches, 0u) << sh;
      EXPECT_TRUE(k2c.host() == k1c.host())
          << sh << ": the key cache differs from kv_append_pair's";
      EXPECT_TRUE(v2c.host() == v1c.host()) << sh << ": the value cache differs";
    }
  // int8 / fp8 caches are refused (their scales are calibrated on the whole append first).
  const cu::KvView i8{cu::KvType::INT8, nullptr, nullptr, false};
  EXPECT_NE(
      cu::qk_norm_rope_kv_append(nullptr, 1, nullptr, nullptr, 1, nullptr, nullptr, i8, i8, 1, hd,
                                 1e-6f, nullptr, nullptr, nullptr, cu::Act::BF16, nullptr),
      0);
}

TEST_F(CudaOps, AddRmsnormMatchesCpuFused) {
  std::mt19937 g(15);
  // n = 5000: past 16 values a thread, the kernel's path without registers.
  for (int64_t n : {128, 1024, 2560, 5000})
    for (bool with_delta : {true, false}) {
      const int64_t rows = 4;
      const auto h = randv(size_t(rows * n), g, ActType::BF16, 2.0f);
      const auto delta = randv(h.size(), g, ActType::BF16, 1.0f);
      const auto gain = randv(size_t(n), g, ActType::BF16, 1.0f);
      Dev<float> dh(h), dd(delta), dg(gain), dn(h.size()), ds(h.size());
      // Without a delta, the sum is not asked for (the normed buffer holds it on the way) and
      // must stay untouched.
      if (!with_delta) ds.put(std::vector<float>(h.size(), NAN));
      CU_OK(cu::add_rmsnorm(dh.get(), with_delta ? dd.get() : nullptr, dn.get(),
                            with_delta ? ds.get() : nullptr, dg.get(), rows, n, 1e-6f,
                            cu::Act::BF16, cu::Act::BF16, nullptr));
      std::vector<float> wh = h, wn(h.size()), ws(h.size());
      for (int64_t r = 0; r < rows; ++r) {
        const size_t o = size_t(r * n);
#if __has_include("kernels/types.h")  // the backend seam's cpu::fused_add_rmsnorm: one ActType
        cpu::fused_add_rmsnorm(&wh[o], with_delta ? &delta[o] : nullptr, &wn[o], &ws[o],
                               gain.data(), n, 1e-6f, ActType::BF16);
#else
        cpu::fused_add_rmsnorm(&wh[o], with_delta ? &delta[o] : nullptr, &wn[o], &ws[o],
                               gain.data(), n, 1e-6f, ActType::BF16, ActType::BF16);
#endif
      }
      const std::string sh =
          shape_str("[%ld,%ld] bf16%s", long(rows), long(n), with_delta ? "" : " no-delta");
      if (!with_delta) ws = std::vector<float>(ws.size(), NAN);  // ds keeps its poison
      for (auto [name, got, want] : {std::tuple{"add_rmsnorm.h", dh.host(), wh},
                                     std::tuple{"add_rmsnorm.norm", dn.host(), wn},
                                     std::tuple{"add_rmsnorm.sum", ds.host(), ws}}) {
        const Cmp r = compare(got, want);
        print(name, sh, r);
        EXPECT_EQ(r.mismatches, 0u) << name;
      }
    }
}

TEST_F(CudaOps, FusedProjectionsAreBitIdenticalToCpu) {
  std::mt19937 g(16);
  struct Case {
    int64_t dim, q_rows, kv_rows, ffn, T;
    bool bias;
  };
  // {136, 20, 12, 100}: cols not a multiple of 32, 8-row blocks that straddle the q/k/v segments.
  for (const Case& c : {Case{1024, 2048, 1024, 3072, 1, false}, Case{896, 896, 128, 4864, 2, true},
                        Case{64, 64, 32, 200, 3, true}, Case{136, 20, 12, 100, 2, true}})
    for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
      const auto x = randv(size_t(c.T * c.dim), g, ActType::BF16, 2.0f);
      const auto gain = randv(size_t(c.dim), g, ActType::BF16, 1.0f);
      HostWeight wq = rand_weight(dt, c.q_rows, c.dim, g, 0.03f);
      HostWeight wk = rand_weight(dt, c.kv_rows, c.dim, g, 0.03f);
      HostWeight wv = rand_weight(dt, c.kv_rows, c.dim, g, 0.03f);
      const auto bq = randv(size_t(c.q_rows), g, ActType::BF16, 0.1f);
      const auto bk = randv(size_t(c.kv_rows), g, ActType::BF16, 0.1f);
      const auto bv = randv(size_t(c.kv_rows), g, ActType::BF16, 0.1f);
      Dev<uint8_t> dwq(wq.bytes), dwk(wk.bytes), dwv(wv.bytes);
      Dev<float> dx(x), dgain(gain), dbq(bq), dbk(bk), dbv(bv);
      Dev<float> dq(size_t(c.T * c.q_rows)), dk(size_t(c.T * c.kv_rows)),
          dvv(size_t(c.T * c.kv_rows));
      auto dw = [&](const HostWeight& w, const Dev<uint8_t>& d) {
        return cu::DevWeight{wtype(dt), d.get(), w.rows, w.cols};
      };
      CU_OK(cu::rmsnorm_qkv(dq.get(), dk.get(), dvv.get(), dx.get(), c.T, dgain.get(), 1e-6f,
                            dw(wq, dwq), dw(wk, dwk), dw(wv, dwv), c.bias ? dbq.get() : nullptr,
                            c.bias ? dbk.get() : nullptr, c.bias ? dbv.get() : nullptr,
                            cu::Act::BF16, nullptr));
      std::vector<float> q(dq.host().size()), k(dk.host().size()), v(k.size()),
          xn(size_t(c.T * c.dim));
      auto bw = [&](const std::vector<float>& b) {
        return c.bias ? cpu::Weight{DType::F32, b.data(), 1, int64_t(b.size())} : cpu::Weight{};
      };
      cpu::fused_rmsnorm_qkv(q.data(), k.data(), v.data(), x.data(), c.T, gain.data(), 1e-6f,
                             cpu_w(wq), cpu_w(wk), cpu_w(wv), bw(bq), bw(bk), bw(bv), ActType::BF16,
                             xn.data(), nullptr);
      const std::string sh =
          shape_str("%s dim=%ld q=%ld kv=%ld T=%ld%s", std::string(dtype_name(dt)).c_str(),
                    long(c.dim), long(c.q_rows), long(c.kv_rows), long(c.T), c.bias ? " bias" : "");
      for (auto [name, got, want] :
           {std::tuple{"rmsnorm_qkv.q", dq.host(), q}, std::tuple{"rmsnorm_qkv.k", dk.host(), k},
            std::tuple{"rmsnorm_qkv.v", dvv.host(), v}}) {
        const Cmp r = compare(got, want);
        print(name, sh, r);
        EXPECT_EQ(r.mismatches, 0u) << name;
      }

      HostWeight wg = rand_weight(dt, c.ffn, c.dim, g, 0.05f);
      HostWeight wu = rand_weight(dt, c.ffn, c.dim, g, 0.05f);
      Dev<uint8_t> dwg(wg.bytes), dwu(wu.bytes);
      Dev<float> dout(size_t(c.T * c.ffn));
      CU_OK(cu::gate_up_silu(dout.get(), dx.get(), c.T, dw(wg, dwg), dw(wu, dwu), cu::Act::BF16,
                             nullptr));
      std::vector<float> want(size_t(c.T * c.ffn)), gs(want.size()), us(want.size());
      cpu::fused_gate_up_silu(want.data(), x.data(), c.T, cpu_w(wg), cpu_w(wu), ActType::BF16,
                              gs.data(), us.data(), nullptr);
      const Cmp r = compare(dout.host(), want);
      print("gate_up_silu",
            shape_str("%s dim=%ld ffn=%ld T=%ld", std::string(dtype_name(dt)).c_str(), long(c.dim),
                      long(c.ffn), long(c.T)),
            r);
      EXPECT_LE(r.mismatches, want.size() / 1000 + 1);  // libm vs CUDA exp: rare last bits
      EXPECT_LT(r.nmse, 1e-8);
    }
}

TEST_F(CudaOps, CublasLtGemmWithinTolerance) {
  std::mt19937 g(17);
  cu::GemmContext* ctx = cu::gemm_create(128, 4096, nullptr);
  ASSERT_NE(ctx, nullptr);
  struct Case {
    int64_t rows, cols, T;
  };
  for (DType dt : {DType::BF16, DType::F16, DType::F32})
    for (const Case& c :
         {Case{1024, 1024, 128}, Case{3072, 1024, 17}, Case{1024, 3072, 4}, Case{100, 64, 5}})
      for (ActType act : {ActType::BF16, ActType::F32}) {
        const ActType xin = dt == DType::F16 ? ActType::F16 : ActType::BF16;
        HostWeight w = rand_weight(dt, c.rows, c.cols, g, 0.03f);
        const auto x = randv(size_t(c.T * c.cols), g, dt == DType::F32 ? ActType::F32 : xin);
        const auto bias = randv(size_t(c.rows), g, ActType::BF16, 0.1f);
        Dev<uint8_t> dw(w.bytes);
        Dev<float> dx(x), db(bias), dout(size_t(c.T * c.rows));
        ASSERT_EQ(cu::gemm(ctx, dout.get(), dx.get(), c.T, {wtype(dt), dw.get(), c.rows, c.cols},
                           db.get(), to_cu(act)),
                  0);
        std::vector<float> want(size_t(c.T * c.rows)), scratch(size_t(c.cols));
        cpu::linear(want.data(), x.data(), c.T, cpu_w(w),
                    cpu::Weight{DType::F32, bias.data(), 1, c.rows}, act, scratch.data());
        const Cmp r = compare(dout.host(), want);
        print("gemm_cublaslt",
              shape_str("%s [%ld,%ld] T=%ld %s", std::string(dtype_name(dt)).c_str(), long(c.rows),
                        long(c.cols), long(c.T), act_name(act)),
              r);
        // fp32 accumulation in another order: ~1e-7 relative before rounding; a bf16 output flips
        // by one ulp (2^-8) at a small fraction of elements.
        EXPECT_LT(r.nmse, act == ActType::F32 ? 1e-11 : 1e-6);
      }
  cu::gemm_destroy(ctx);
}

TEST_F(CudaOps, EmbedAndArgmaxExact) {
  std::mt19937 g(18);
  HostWeight tab = rand_weight(DType::BF16, 1000, 96, g, 1.0f);
  const std::vector<int32_t> ids = {0, 999, 17, 17};
  Dev<uint8_t> dt(tab.bytes);
  Dev<int32_t> dids(ids);
  Dev<float> dout(ids.size() * 96);
  CU_OK(cu::embed(dout.get(), dids.get(), int64_t(ids.size()),
                  {cu::WType::BF16, dt.get(), 1000, 96}, nullptr));
  std::vector<float> want(ids.size() * 96);
  for (size_t t = 0; t < ids.size(); ++t) cpu::weight_row_f32(cpu_w(tab), ids[t], &want[t * 96]);
  const Cmp r = compare(dout.host(), want);
  print("embed", "bf16 [1000,96] T=4", r);
  EXPECT_EQ(r.mismatches, 0u);

  for (int64_t n : {1, 1000, 151936}) {
    auto x = randv(size_t(n), g, ActType::BF16);
    const size_t a = size_t(n) * 7 / 10, b = size_t(n) / 3;  // a tie at the maximum
    x[a] = x[b] = 100.0f;
    Dev<float> dx(x);
    Dev<int32_t> dr(1);
    CU_OK(cu::argmax(dr.get(), dx.get(), n, nullptr));
    EXPECT_EQ(dr.host()[0], int32_t(std::min(a, b))) << "n " << n;
  }
}

}  // namespace
}  // namespace fusecheck
