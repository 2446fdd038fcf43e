// Every op of the Backend table against the scalar CPU reference (kernels/cpu/ops.h, fused.h and
// quant.h), over swept sizes, activation types and KV formats, scored by the normalised mean
// squared error NMSE = sum (got - ref)^2 / sum ref^2 (as llama.cpp's test-backend-ops scores).
// Each backend registers a case in backend_cases(): its factory and the NMSE it must stay under.
// The CPU backend must be bit-identical (NMSE 0 and every bit equal); a GPU backend registers a
// tolerance and, on a machine without a GPU, skips with a message.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cuda_module_testing.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/fused.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/quant.h"
#include "model/kv_cache.h"
#include "random_testing.h"
#include "util/half.h"

namespace fusecheck {
namespace {

struct BackendCase {
  std::string name;
  // The backend, or nullptr with *why set when this machine cannot run it (then the case skips).
  // Made in SetUp, so only a CUDA case loads the CUDA module.
  std::function<std::shared_ptr<Backend>(std::string* why)> make;
  double max_nmse = 0;  // 0: bit-identical to the reference
};

std::vector<BackendCase> backend_cases() {
  // The CUDA backend through its module, as the engine loads it. cuBLASLt prefill and the split
  // online softmax are tolerance ops (docs/NUMERICS.md).
  const auto cuda = [](bool prefill_gemm) {
    return [prefill_gemm](std::string* why) {
      CudaBackendOptions o;
      o.prefill_gemm = prefill_gemm;
      return testing::cuda_backend_or_why(o, why);
    };
  };
  return {
      {"cpu1", [](std::string*) { return make_cpu_backend(1); }, 0},
      {"cpu3", [](std::string*) { return make_cpu_backend(3); }, 0},
      {"cuda", cuda(true), 1e-6},
      {"cuda_gemv_only", cuda(false), 1e-6},
  };
}

class BackendOps : public ::testing::TestWithParam<BackendCase> {
 protected:
  void SetUp() override {
    std::string why;
    b_ = GetParam().make(&why);
    if (!b_) GTEST_SKIP() << "no CUDA backend: " << why << "; skipping";
  }
  Buffer up(const std::vector<float>& v) {
    Buffer buf = b_->alloc(v.size() * sizeof(float));
    b_->upload(buf, 0, v.data(), v.size() * sizeof(float));
    return buf;
  }
  std::vector<float> down(const Buffer& buf, size_t n) {
    std::vector<float> v(n);
    b_->download(v.data(), buf, 0, n * sizeof(float));
    return v;
  }
  // Checks got against ref: bit-identical for an exact backend, else NMSE under its tolerance.
  void expect_close(const std::vector<float>& got, const std::vector<float>& ref,
                    const std::string& what) {
    ASSERT_EQ(got.size(), ref.size()) << what;
    double num = 0, den = 0;
    size_t bit_diffs = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      const double d = double(got[i]) - ref[i];
      num += d * d, den += double(ref[i]) * ref[i];
      bit_diffs += std::memcmp(&got[i], &ref[i], 4) != 0;
    }
    const double nmse = den > 0 ? num / den : num;
    if (GetParam().max_nmse == 0)
      EXPECT_EQ(bit_diffs, 0u) << what << ": " << bit_diffs << " of " << ref.size()
                               << " values differ, NMSE " << nmse;
    else
      EXPECT_LE(nmse, GetParam().max_nmse) << what;
  }
  std::shared_ptr<Backend> b_;
};

using testing::randn;

// A bf16 weight matrix [rows, cols] (the model dtype of the benchmarks).
struct Bf16Matrix {
  std::vector<uint16_t> bits;
  Weight w;
  Bf16Matrix(int64_t rows, int64_t cols, std::mt19937& rng) {
    auto f = randn(static_cast<size_t>(rows * cols), rng, 0.1f);
    for (float x : f) bits.push_back(f32_to_bf16(x));
    w = Weight{DType::BF16, bits.data(), rows, cols};
  }
};

constexpr ActType kTypes[] = {ActType::F32, ActType::BF16};
constexpr int64_t kTokens[] = {1, 3, 17};
constexpr int64_t kDims[] = {64, 96, 200};

std::string tag(const char* op, ActType t, int64_t T, int64_t n) {
  return std::string(op) + " act=" + std::to_string(static_cast<int>(t)) +
         " T=" + std::to_string(T) + " n=" + std::to_string(n);
}

TEST_P(BackendOps, EmbedLinearLogits) {
  std::mt19937 rng(1);
  for (ActType t : kTypes)
    for (int64_t T : kTokens)
      for (int64_t n : kDims) {
        Bf16Matrix m(45, n, rng);
        const Weight w = b_->adopt_weight(m.w);
        std::vector<float> bias_f = randn(45, rng, 0.5f, ActType::BF16);
        std::vector<uint16_t> bias_bits;
        for (float x : bias_f) bias_bits.push_back(f32_to_bf16(x));
        const Weight bias = b_->adopt_weight(Weight{DType::BF16, bias_bits.data(), 1, 45});
        auto x = randn(static_cast<size_t>(T * n), rng, 1.0f, t);
        Buffer xb = up(x), out = b_->alloc(static_cast<size_t>(T * 45) * 4);
        std::vector<float> ref(static_cast<size_t>(T * 45)), scratch(static_cast<size_t>(n));
        b_->linear(out.f32(), xb.f32(), T, w, bias, t);
        cpu::linear(ref.data(), x.data(), T, m.w, Weight{DType::BF16, bias_bits.data(), 1, 45}, t,
                    scratch.data());
        expect_close(down(out, ref.size()), ref, tag("linear", t, T, n));
        b_->logits(out.f32(), xb.f32(), T, w, t);
        cpu::linear(ref.data(), x.data(), T, m.w, Weight{}, t, scratch.data());
        expect_close(down(out, ref.size()), ref, tag("logits", t, T, n));
        // embed: rows of the table by id
        std::vector<int32_t> ids;
        for (int64_t i = 0; i < T; ++i) ids.push_back(static_cast<int32_t>((i * 7) % 45));
        Buffer idb = b_->alloc(ids.size() * 4), eo = b_->alloc(static_cast<size_t>(T * n) * 4);
        b_->upload(idb, 0, ids.data(), ids.size() * 4);
        b_->embed(eo.f32(), idb.i32(), T, w);
        std::vector<float> eref(static_cast<size_t>(T * n));
        for (int64_t i = 0; i < T; ++i) cpu::weight_row_f32(m.w, ids[i], &eref[i * n]);
        expect_close(down(eo, eref.size()), eref, tag("embed", t, T, n));
      }
}

TEST_P(BackendOps, NormsAndElementwise) {
  std::mt19937 rng(2);
  for (ActType t : kTypes)
    for (int64_t T : kTokens)
      for (int64_t n : kDims) {
        const size_t N = static_cast<size_t>(T * n);
        auto h = randn(N, rng, 3.0f, t), d = randn(N, rng, 1.0f, t), g = randn(n, rng, 1.0f, t);
        Buffer hb = up(h), db = up(d), gb = up(g), nb = b_->alloc(N * 4), sb = b_->alloc(N * 4);
        std::vector<float> ref(N), href = h, sref(N);
        b_->rmsnorm(nb.f32(), hb.f32(), gb.f32(), T, n, 1e-6f, t);
        for (int64_t r = 0; r < T; ++r) cpu::rmsnorm(&ref[r * n], &h[r * n], g.data(), n, 1e-6f, t);
        expect_close(down(nb, N), ref, tag("rmsnorm", t, T, n));
        b_->add_rmsnorm(hb.f32(), db.f32(), nb.f32(), sb.f32(), gb.f32(), T, n, 1e-6f, t);
        for (int64_t r = 0; r < T; ++r)
          cpu::fused_add_rmsnorm(&href[r * n], &d[r * n], &ref[r * n], &sref[r * n], g.data(), n,
                                 1e-6f, t);
        expect_close(down(nb, N), ref, tag("add_rmsnorm normed", t, T, n));
        expect_close(down(hb, N), href, tag("add_rmsnorm h", t, T, n));
        expect_close(down(sb, N), sref, tag("add_rmsnorm sum", t, T, n));
        b_->add(nb.f32(), hb.f32(), db.f32(), static_cast<int64_t>(N), t);
        cpu::add(ref.data(), href.data(), d.data(), N, t);
        expect_close(down(nb, N), ref, tag("add", t, T, n));
        b_->silu_mul(nb.f32(), hb.f32(), db.f32(), static_cast<int64_t>(N), t);
        cpu::silu_mul(ref.data(), href.data(), d.data(), N, t);
        expect_close(down(nb, N), ref, tag("silu_mul", t, T, n));
      }
}

TEST_P(BackendOps, FusedProjections) {
  std::mt19937 rng(3);
  for (ActType t : kTypes)
    for (int64_t T : kTokens)
      for (int64_t n : kDims) {
        Bf16Matrix wq(64, n, rng), wk(32, n, rng), wv(32, n, rng), wg(50, n, rng), wu(50, n, rng);
        auto x = randn(static_cast<size_t>(T * n), rng, 2.0f, t), g = randn(n, rng, 1.0f, t);
        Buffer xb = up(x), gb = up(g), xn = b_->alloc(static_cast<size_t>(T * n) * 4);
        Buffer q = b_->alloc(static_cast<size_t>(T * 64) * 4);
        Buffer k = b_->alloc(static_cast<size_t>(T * 32) * 4), v = b_->alloc(k.bytes());
        const QkvWeights w{b_->adopt_weight(wq.w),
                           b_->adopt_weight(wk.w),
                           b_->adopt_weight(wv.w),
                           Weight{},
                           Weight{},
                           Weight{}};
        b_->rmsnorm_qkv(q.f32(), k.f32(), v.f32(), xb.f32(), T, gb.f32(), 1e-6f, w, t, xn.f32());
        // Reference: the fp32 normalised input times its gain, then the scalar projections.
        std::vector<float> xr(x.size()), scratch(static_cast<size_t>(n));
        for (int64_t r = 0; r < T; ++r) {
          const float inv = cpu::inv_rms(&x[r * n], n, 1e-6f);
          for (int64_t i = 0; i < n; ++i) xr[r * n + i] = g[i] * (x[r * n + i] * inv);
        }
        std::vector<float> qr(static_cast<size_t>(T * 64)), kr(static_cast<size_t>(T * 32));
        cpu::linear(qr.data(), xr.data(), T, wq.w, Weight{}, t, scratch.data());
        expect_close(down(q, qr.size()), qr, tag("rmsnorm_qkv q", t, T, n));
        cpu::linear(kr.data(), xr.data(), T, wk.w, Weight{}, t, scratch.data());
        expect_close(down(k, kr.size()), kr, tag("rmsnorm_qkv k", t, T, n));
        cpu::linear(kr.data(), xr.data(), T, wv.w, Weight{}, t, scratch.data());
        expect_close(down(v, kr.size()), kr, tag("rmsnorm_qkv v", t, T, n));
        // gate_up_silu: fp32 gate and up, one rounding.
        const size_t F = static_cast<size_t>(T * 50);
        Buffer out = b_->alloc(F * 4), gt = b_->alloc(F * 4), ut = b_->alloc(F * 4);
        b_->gate_up_silu(out.f32(), xb.f32(), T, b_->adopt_weight(wg.w), b_->adopt_weight(wu.w), t,
                         gt.f32(), ut.f32());
        std::vector<float> gr(F), ur(F), ref(F);
        cpu::linear(gr.data(), x.data(), T, wg.w, Weight{}, ActType::F32, scratch.data());
        cpu::linear(ur.data(), x.data(), T, wu.w, Weight{}, ActType::F32, scratch.data());
        for (size_t i = 0; i < F; ++i)
          ref[i] = round_one(t, gr[i] / (1.0f + std::exp(-gr[i])) * ur[i]);
        expect_close(down(out, F), ref, tag("gate_up_silu", t, T, n));
      }
}

// linear_add_residual and rmsnorm_gate_up_silu (add_rmsnorm taken into the o_proj and gate_up
// ops) against the same backend's three ops they replace, bit for bit (linear, add_rmsnorm,
// gate_up_silu), and against the CPU reference. dim n: the residual's width (o_proj's rows, the
// gate_up input); kin: o_proj's input, a multiple of 8 (the GPU's staged kernels) or not (the
// fallback); n = 256 and 1024 take add_rmsnorm's larger GPU blocks (its sum of squares' order).
TEST_P(BackendOps, LinearAddResidualAndRmsnormGateUpSiluEqualTheComposition) {
  std::mt19937 rng(6);
  constexpr int64_t kFfn = 72;
  for (ActType t : kTypes)
    for (int64_t T : kTokens)
      for (int64_t n : {64, 200, 256, 1024})
        for (int64_t kin : {80, 45}) {
          const size_t N = static_cast<size_t>(T * n), F = static_cast<size_t>(T * kFfn);
          Bf16Matrix wo(n, kin, rng), wg(kFfn, n, rng), wu(kFfn, n, rng);
          const Weight o = b_->adopt_weight(wo.w), g = b_->adopt_weight(wg.w);
          const Weight u = b_->adopt_weight(wu.w);
          auto x = randn(static_cast<size_t>(T * kin), rng, 1.0f, t);
          auto h = randn(N, rng, 3.0f, t), gain = randn(n, rng, 1.0f, t);
          Buffer xb = up(x), gb = up(gain), h1 = up(h), h2 = up(h);
          Buffer d1 = b_->alloc(N * 4), d2 = b_->alloc(N * 4), s1 = b_->alloc(N * 4);
          Buffer s2 = b_->alloc(N * 4), n1 = b_->alloc(N * 4), n2 = b_->alloc(N * 4);
          Buffer o1 = b_->alloc(F * 4), o2 = b_->alloc(F * 4), gt = b_->alloc(F * 4);
          Buffer ut = b_->alloc(F * 4);
          b_->linear(d1.f32(), xb.f32(), T, o, Weight{}, t);
          b_->add_rmsnorm(h1.f32(), d1.f32(), n1.f32(), s1.f32(), gb.f32(), T, n, 1e-6f, t);
          b_->gate_up_silu(o1.f32(), n1.f32(), T, g, u, t, gt.f32(), ut.f32());
          b_->linear_add_residual(d2.f32(), h2.f32(), s2.f32(), xb.f32(), T, o, t);
          b_->rmsnorm_gate_up_silu(o2.f32(), n2.f32(), s2.f32(), T, gb.f32(), 1e-6f, g, u, t,
                                   gt.f32(), ut.f32());
          const std::string what = tag("linear_add_residual + rmsnorm_gate_up_silu", t, T, n) +
                                   " kin=" + std::to_string(kin);
          std::vector<float> ref_d(N), ref_h = h, ref_s(N), ref_n(N), ref_o(F),
                                       scratch(static_cast<size_t>(kin));
          cpu::linear(ref_d.data(), x.data(), T, wo.w, Weight{}, t, scratch.data());
          std::vector<float> gs(F), us(F);
          for (int64_t r = 0; r < T; ++r)
            cpu::fused_add_rmsnorm(&ref_h[r * n], &ref_d[r * n], &ref_n[r * n], &ref_s[r * n],
                                   gain.data(), n, 1e-6f, t);
          cpu::fused_gate_up_silu(ref_o.data(), ref_n.data(), T, wg.w, wu.w, t, gs.data(),
                                  us.data(), nullptr);
          const struct {
            const char* name;
            const Buffer &got, &composed;
            size_t count;
            const std::vector<float>& ref;
          } outs[] = {{"delta", d2, d1, N, ref_d},
                      {"h", h2, h1, N, ref_h},
                      {"sum", s2, s1, N, ref_s},
                      {"normed", n2, n1, N, ref_n},
                      {"out", o2, o1, F, ref_o}};
          for (const auto& e : outs) {
            const auto got = down(e.got, e.count), composed = down(e.composed, e.count);
            EXPECT_EQ(std::memcmp(got.data(), composed.data(), e.count * 4), 0)
                << what << ": " << e.name << " differs from linear + add_rmsnorm + gate_up_silu";
            expect_close(got, e.ref, what + " " + e.name);
          }
        }
}

// RoPE tables for positions [0, n_pos): [n_pos, hd / 2] each, as Rope::cos_sin forms them.
void rope_tables(int64_t n_pos, int64_t hd, std::vector<float>& cs, std::vector<float>& sn) {
  const int64_t half = hd / 2;
  cs.resize(static_cast<size_t>(n_pos * half)), sn.resize(cs.size());
  for (int64_t p = 0; p < n_pos; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const float a = static_cast<float>(p) / std::pow(10000.0f, 2.0f * i / hd);
      cs[p * half + i] = static_cast<float>(std::cos(double(a)));
      sn[p * half + i] = static_cast<float>(std::sin(double(a)));
    }
}

// The CPU reference of Backend::qk_norm_rope: x: [T, heads * hd] in place; gain: [hd] or nullptr.
void qk_norm_rope_ref(std::vector<float>& x, int64_t T, int64_t heads, int64_t hd,
                      const float* gain, const std::vector<float>& cs, const std::vector<float>& sn,
                      int64_t pos0, ActType t, bool fused) {
  const int64_t half = hd / 2;
  std::vector<float> c(static_cast<size_t>(half)), s(c.size());
  for (int64_t tok = 0; tok < T; ++tok) {
    const float* ct = &cs[(pos0 + tok) * half];
    const float* st = &sn[(pos0 + tok) * half];
    float* xt = &x[tok * heads * hd];
    if (fused) {
      cpu::fused_qk_norm_rope(xt, heads, hd, gain, 1e-6f, ct, st, t);
      continue;
    }
    for (int64_t i = 0; i < half; ++i) c[i] = round_one(t, ct[i]), s[i] = round_one(t, st[i]);
    for (int64_t h = 0; h < heads; ++h) {
      if (gain) cpu::rmsnorm(xt + h * hd, xt + h * hd, gain, hd, 1e-6f, t);
      cpu::rope_rotate_half(xt + h * hd, hd, c.data(), s.data(), t);
    }
  }
}

TEST_P(BackendOps, QkNormRope) {
  std::mt19937 rng(4);
  for (ActType t : kTypes)
    for (int64_t hd : {64, 128})
      for (int64_t T : kTokens)
        for (bool fused : {false, true})
          for (bool gain_on : {false, true}) {
            const int64_t heads = 3, pos0 = 5, n_pos = pos0 + T;
            auto x = randn(static_cast<size_t>(T * heads * hd), rng, 2.0f, t);
            auto g = randn(hd, rng, 1.0f, t);
            std::vector<float> cs, sn;
            rope_tables(n_pos, hd, cs, sn);
            Buffer xb = up(x), gb = up(g), cb = up(cs), sb = up(sn), pb = b_->alloc(4);
            const int32_t p0 = pos0;
            b_->upload(pb, 0, &p0, 4);
            b_->qk_norm_rope(xb.f32(), T, heads, hd, gain_on ? gb.f32() : nullptr, 1e-6f,
                             RopeTable{cb.f32(), sb.f32(), n_pos}, pb.i32(), t, fused);
            std::vector<float> ref = x;
            qk_norm_rope_ref(ref, T, heads, hd, gain_on ? g.data() : nullptr, cs, sn, pos0, t,
                             fused);
            expect_close(down(xb, ref.size()), ref,
                         tag(fused ? "qk_norm_rope fused" : "qk_norm_rope", t, T, hd));
          }
}

// qk_norm_rope_pair (q and k in one op) against the CPU reference, and bit for bit against the
// same backend's two one-tensor calls (q: 4 heads, k: 2, each its own gain, or none).
TEST_P(BackendOps, QkNormRopePairEqualsTwoCalls) {
  std::mt19937 rng(5);
  for (ActType t : kTypes)
    for (int64_t hd : {64, 128})
      for (int64_t T : kTokens)
        for (bool fused : {false, true})
          for (bool gain_on : {false, true}) {
            const int64_t nh = 4, nkv = 2, pos0 = 7, n_pos = pos0 + T;
            auto q = randn(static_cast<size_t>(T * nh * hd), rng, 2.0f, t);
            auto k = randn(static_cast<size_t>(T * nkv * hd), rng, 2.0f, t);
            auto gq = randn(hd, rng, 1.0f, t), gk = randn(hd, rng, 1.0f, t);
            std::vector<float> cs, sn;
            rope_tables(n_pos, hd, cs, sn);
            Buffer qb = up(q), kb = up(k), q2 = up(q), k2 = up(k), gqb = up(gq), gkb = up(gk);
            Buffer cb = up(cs), sb = up(sn), pb = b_->alloc(4);
            const int32_t p0 = pos0;
            b_->upload(pb, 0, &p0, 4);
            const RopeTable rope{cb.f32(), sb.f32(), n_pos};
            const float* gqd = gain_on ? gqb.f32() : nullptr;
            const float* gkd = gain_on ? gkb.f32() : nullptr;
            b_->qk_norm_rope_pair({qb.f32(), nh, gqd}, {kb.f32(), nkv, gkd}, T, hd, 1e-6f, rope,
                                  pb.i32(), t, fused);
            b_->qk_norm_rope(q2.f32(), T, nh, hd, gqd, 1e-6f, rope, pb.i32(), t, fused);
            b_->qk_norm_rope(k2.f32(), T, nkv, hd, gkd, 1e-6f, rope, pb.i32(), t, fused);
            const std::string what =
                tag(fused ? "qk_norm_rope_pair fused" : "qk_norm_rope_pair", t, T, hd);
            const auto got_q = down(qb, q.size()), got_k = down(kb, k.size());
            EXPECT_EQ(std::memcmp(got_q.data(), down(q2, q.size()).data(), q.size() * 4), 0)
                << what << ": q differs from the one-tensor call";
            EXPECT_EQ(std::memcmp(got_k.data(), down(k2, k.size()).data(), k.size() * 4), 0)
                << what << ": k differs from the one-tensor call";
            qk_norm_rope_ref(q, T, nh, hd, gain_on ? gq.data() : nullptr, cs, sn, pos0, t, fused);
            qk_norm_rope_ref(k, T, nkv, hd, gain_on ? gk.data() : nullptr, cs, sn, pos0, t, fused);
            expect_close(got_q, q, what + " q");
            expect_close(got_k, k, what + " k");
          }
}

// The value attention must read back from a cache of `storage` for x, with its scale.
float stored_value(KvStorage s, float x, float scale) {
  switch (s) {
    case KvStorage::F32:
      return x;
    case KvStorage::BF16:
      return bf16_to_f32(f32_to_bf16(x));
    case KvStorage::F16:
      return f16_to_f32(f32_to_f16(x));
    case KvStorage::Int8: {
      // An int8 code has no negative zero: a -0 roundtrip reads back as +0. Attention cannot tell
      // them apart (every sum it forms starts at +0), which the attention checks below show
      // bit for bit against the -0 values themselves.
      const float r = int8_roundtrip(x, scale);
      return r == 0 ? 0.0f : r;
    }
    case KvStorage::Fp8E4M3:
      return fp8_roundtrip(x, scale);
  }
  return x;
}

struct KvCase {
  KvFormat format;
  KvScale scale;
  ActType act;
};

TEST_P(BackendOps, KvAppendAndAttentionReadTheCacheInPlace) {
  std::mt19937 rng(5);
  const KvCase cases[] = {
      {KvFormat::kSame, KvScale::kPerTensor, ActType::F32},
      {KvFormat::kSame, KvScale::kPerTensor, ActType::BF16},
      {KvFormat::kFp16, KvScale::kPerTensor, ActType::BF16},
      {KvFormat::kInt8, KvScale::kPerTensor, ActType::BF16},
      {KvFormat::kInt8, KvScale::kPerChannel, ActType::BF16},
      {KvFormat::kFp8E4M3, KvScale::kPerTensor, ActType::BF16},
      {KvFormat::kFp8E4M3, KvScale::kPerChannel, ActType::F32},
  };
  for (const KvCase& kc : cases)
    for (int64_t hd : {64, 128})
      for (bool online : {false, true}) {
        const int64_t nh = 4, nkv = 2, kv_dim = nkv * hd, q_dim = nh * hd;
        // Two appends: a 9-token prompt (which calibrates lossy scales), then a 40-token
        // continuation (longer than a tile, values beyond the calibrated range saturate).
        KvCache cache(b_, 1, nkv, hd, 64, kc.act, kc.format, kc.scale);
        std::vector<float> all_k, all_v;
        Buffer pb = b_->alloc(4);
        int32_t pos0 = 0;
        for (int64_t T : {9, 40}) {
          auto k = randn(static_cast<size_t>(T * kv_dim), rng, 1.5f, kc.act);
          auto v = randn(k.size(), rng, 1.0f, kc.act);
          auto q = randn(static_cast<size_t>(T * q_dim), rng, 1.0f, kc.act);
          ASSERT_TRUE(cache.reserve_more(T).ok());
          Buffer kb = up(k), vb = up(v), qb = up(q), ob = b_->alloc(q.size() * 4);
          b_->upload(pb, 0, &pos0, 4);
          b_->kv_append(cache.layer(0), kb.f32(), vb.f32(), T, pb.i32());
          all_k.insert(all_k.end(), k.begin(), k.end());
          all_v.insert(all_v.end(), v.begin(), v.end());
          cache.set_size(pos0 + T);
          AttentionParams ap{T, nh, nkv, hd, 1.0f / std::sqrt(float(hd)), kc.act, online, false};
          b_->attention(ob.f32(), qb.f32(), cache.layer(0), pb.i32(), ap);
          // Reference: the scales calibrated on the first append (amax / qmax), the roundtrip
          // values in fp32, and the scalar kernels over them.
          const int64_t n = pos0 + T;
          const bool per_ch = kc.scale == KvScale::kPerChannel;
          const float qmax = kc.format == KvFormat::kInt8 ? kInt8Max : kFp8E4M3Max;
          std::vector<float> ks(static_cast<size_t>(kv_dim), 0), vs(ks.size(), 0);
          for (int64_t r = 0; r < 9; ++r)
            for (int64_t c = 0; c < kv_dim; ++c) {
              float& a = ks[per_ch ? c : 0];
              a = std::max(a, std::fabs(all_k[r * kv_dim + c]));
              float& b = vs[per_ch ? c : 0];
              b = std::max(b, std::fabs(all_v[r * kv_dim + c]));
            }
          for (auto* sc : {&ks, &vs})
            for (float& a : *sc) a = a > 0 ? a / qmax : 1.0f;
          const KvStorage st = cache.storage();
          std::vector<float> kr(static_cast<size_t>(n * kv_dim)), vr(kr.size());
          std::vector<float> ke(kr.size()), ve(kr.size());  // the exact emulation (keeps -0)
          for (int64_t i = 0; i < n * kv_dim; ++i) {
            const int64_t c = per_ch ? i % kv_dim : 0;
            kr[i] = stored_value(st, all_k[i], ks[c]);
            vr[i] = stored_value(st, all_v[i], vs[c]);
            ke[i] = st == KvStorage::Int8 ? int8_roundtrip(all_k[i], ks[c]) : kr[i];
            ve[i] = st == KvStorage::Int8 ? int8_roundtrip(all_v[i], vs[c]) : vr[i];
          }
          // kv_append stores what it claims: load_head gives the roundtrip values back.
          std::vector<float> kh(static_cast<size_t>(n * hd)), vh(kh.size());
          for (int64_t h = 0; h < nkv; ++h) {
            cache.load_head(0, h, n, kh.data(), vh.data());
            std::vector<float> kref, vref;
            for (int64_t p = 0; p < n; ++p)
              for (int64_t i = 0; i < hd; ++i)
                kref.push_back(kr[p * kv_dim + h * hd + i]),
                    vref.push_back(vr[p * kv_dim + h * hd + i]);
            expect_close(kh, kref, "kv_append keys " + std::to_string(static_cast<int>(st)));
            expect_close(vh, vref, "kv_append values " + std::to_string(static_cast<int>(st)));
          }
          std::vector<float> ref(q.size()), scores(static_cast<size_t>(n)), acc(hd);
          for (int64_t tok = 0; tok < T; ++tok)
            for (int64_t h = 0; h < nh; ++h) {
              const int64_t kvh = h / (nh / nkv), ctx = pos0 + tok + 1;
              float* o = &ref[tok * q_dim + h * hd];
              const float* qh = &q[tok * q_dim + h * hd];
              if (online)
                cpu::fused_attention(o, qh, &ke[kvh * hd], &ve[kvh * hd], ctx, kv_dim, hd, ap.scale,
                                     kc.act, false, acc.data());
              else
                cpu::attention_head(o, qh, &ke[kvh * hd], &ve[kvh * hd], ctx, kv_dim, hd, ap.scale,
                                    kc.act, scores.data());
            }
          expect_close(down(ob, ref.size()), ref,
                       std::string(online ? "attention online" : "attention eager") +
                           " storage=" + std::to_string(static_cast<int>(st)) +
                           " T=" + std::to_string(T) + " hd=" + std::to_string(hd));
          pos0 += static_cast<int32_t>(T);
        }
        // Bytes as claimed: 2 per value for bf16/fp16, 1 for int8/fp8, 4 for fp32.
        EXPECT_EQ(cache.bytes_per_position(),
                  2 * kv_dim * static_cast<int64_t>(kv_storage_bytes(cache.storage())));
      }
}

// qk_norm_rope_kv_append against the same backend's qk_norm_rope_pair then kv_append, bit for
// bit: q, k and what the cache holds (read back per head) after three appends (the first
// calibrates int8/fp8 scales), for every KV format (a GPU runs one kernel for the fused
// 16/32-bit ones, the two ops otherwise), standard and fused, and q against the CPU reference.
TEST_P(BackendOps, QkNormRopeKvAppendEqualsTheTwoOps) {
  std::mt19937 rng(7);
  const KvCase cases[] = {
      {KvFormat::kSame, KvScale::kPerTensor, ActType::F32},
      {KvFormat::kSame, KvScale::kPerTensor, ActType::BF16},
      {KvFormat::kFp16, KvScale::kPerTensor, ActType::BF16},
      {KvFormat::kInt8, KvScale::kPerChannel, ActType::BF16},
      {KvFormat::kFp8E4M3, KvScale::kPerTensor, ActType::BF16},
  };
  const int64_t nh = 4, nkv = 2, hd = 64, kv_dim = nkv * hd, max_pos = 32;
  std::vector<float> cs, sn;
  rope_tables(max_pos, hd, cs, sn);
  Buffer cb = up(cs), sb = up(sn), pb = b_->alloc(4);
  const RopeTable rope{cb.f32(), sb.f32(), max_pos};
  for (const KvCase& kc : cases)
    for (bool fused : {false, true}) {
      KvCache c1(b_, 1, nkv, hd, max_pos, kc.act, kc.format, kc.scale);
      KvCache c2(b_, 1, nkv, hd, max_pos, kc.act, kc.format, kc.scale);
      auto gq = randn(hd, rng, 1.0f, kc.act), gk = randn(hd, rng, 1.0f, kc.act);
      Buffer gqb = up(gq), gkb = up(gk);
      const std::string what =
          "qk_norm_rope_kv_append storage=" + std::to_string(static_cast<int>(c1.storage())) +
          (fused ? " fused" : " standard");
      int32_t pos0 = 0;
      for (int64_t T : {5, 1, 3}) {
        auto q = randn(static_cast<size_t>(T * nh * hd), rng, 2.0f, kc.act);
        auto k = randn(static_cast<size_t>(T * kv_dim), rng, 2.0f, kc.act);
        auto v = randn(k.size(), rng, 1.0f, kc.act);
        ASSERT_TRUE(c1.reserve_more(T).ok());
        ASSERT_TRUE(c2.reserve_more(T).ok());
        Buffer q1 = up(q), k1 = up(k), q2 = up(q), k2 = up(k), vb = up(v);
        b_->upload(pb, 0, &pos0, 4);
        b_->qk_norm_rope_pair({q1.f32(), nh, gqb.f32()}, {k1.f32(), nkv, gkb.f32()}, T, hd, 1e-6f,
                              rope, pb.i32(), kc.act, fused);
        b_->kv_append(c1.layer(0), k1.f32(), vb.f32(), T, pb.i32());
        b_->qk_norm_rope_kv_append({q2.f32(), nh, gqb.f32()}, {k2.f32(), nkv, gkb.f32()}, vb.f32(),
                                   c2.layer(0), T, hd, 1e-6f, rope, pb.i32(), kc.act, fused);
        const auto got_q = down(q2, q.size()), got_k = down(k2, k.size());
        EXPECT_EQ(std::memcmp(got_q.data(), down(q1, q.size()).data(), q.size() * 4), 0) << what;
        EXPECT_EQ(std::memcmp(got_k.data(), down(k1, k.size()).data(), k.size() * 4), 0) << what;
        qk_norm_rope_ref(q, T, nh, hd, gq.data(), cs, sn, pos0, kc.act, fused);
        expect_close(got_q, q, what + " q");
        pos0 += static_cast<int32_t>(T);
        c1.set_size(pos0), c2.set_size(pos0);
      }
      std::vector<float> k1h(static_cast<size_t>(pos0 * hd)), v1h(k1h.size()), k2h(k1h.size()),
          v2h(k1h.size());
      for (int64_t h = 0; h < nkv; ++h) {
        c1.load_head(0, h, pos0, k1h.data(), v1h.data());
        c2.load_head(0, h, pos0, k2h.data(), v2h.data());
        EXPECT_EQ(std::memcmp(k1h.data(), k2h.data(), k1h.size() * 4), 0) << what << " keys";
        EXPECT_EQ(std::memcmp(v1h.data(), v2h.data(), v1h.size() * 4), 0) << what << " values";
      }
    }
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendOps, ::testing::ValuesIn(backend_cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace fusecheck
