// The device KV cache and attention against the CPU: the stored values (bf16/f16 rounding, int8
// and fp8 quantisation with calibrated scales) must equal the CPU cache's emulation bit for bit;
// eager attention must match cpu::attention_head (up to exp/sum-order last bits) and
// flash-decoding cpu::fused_attention within a tolerance (a split online softmax reorders sums).
#include "cuda_testing.h"
#include "kernels/cpu/fused.h"
#include "kernels/cpu/quant.h"

namespace fusecheck {
namespace {

using namespace fusecheck::cudatest;
namespace cu = fusecheck::cuda;
using cpu::ActType;

const char* kv_name(cu::KvType t) {
  switch (t) {
    case cu::KvType::F32:
      return "f32";
    case cu::KvType::BF16:
      return "bf16";
    case cu::KvType::F16:
      return "f16";
    case cu::KvType::INT8:
      return "int8";
    case cu::KvType::FP8:
      return "fp8";
  }
  return "?";
}
size_t kv_elem(cu::KvType t) {
  return t == cu::KvType::F32 ? 4 : (t == cu::KvType::INT8 || t == cu::KvType::FP8) ? 1 : 2;
}

// The CPU cache's stored values for rows x: [n, kv_dim] (KvCache::quantize's arithmetic).
// `scales`: calibrated here when empty (a first store), else used as they are (later stores).
std::vector<float> cpu_store(cu::KvType t, bool per_channel, std::vector<float> x, int64_t kv_dim,
                             std::vector<float>* scales = nullptr) {
  if (t == cu::KvType::BF16 || t == cu::KvType::F16) {
    for (float& v : x) v = cpu::round_one(t == cu::KvType::BF16 ? ActType::BF16 : ActType::F16, v);
    return x;
  }
  if (t == cu::KvType::F32) return x;
  const bool int8 = t == cu::KvType::INT8;
  const float qmax = int8 ? cpu::kInt8Max : cpu::kFp8E4M3Max;
  std::vector<float> own, &sc = scales ? *scales : own;
  if (sc.empty()) {
    sc.assign(per_channel ? size_t(kv_dim) : 1, 0.0f);
    for (size_t i = 0; i < x.size(); ++i) {
      float& a = sc[per_channel ? i % size_t(kv_dim) : 0];
      a = std::max(a, std::fabs(x[i]));
    }
    for (float& a : sc) a = a > 0 ? a / qmax : 1.0f;
  }
  for (size_t i = 0; i < x.size(); ++i) {
    const float s = sc[per_channel ? i % size_t(kv_dim) : 0];
    x[i] = int8 ? cpu::int8_roundtrip(x[i], s) : cpu::fp8_roundtrip(x[i], s);
  }
  return x;
}

// The CPU cache's stored values after a prompt store of `prompt` and a later store of `later`
// (which keeps the prompt's scales): [rows(prompt) + rows(later), kv_dim].
std::vector<float> cpu_store_then(cu::KvType t, bool per_channel, const std::vector<float>& prompt,
                                  const std::vector<float>& later, int64_t kv_dim) {
  std::vector<float> sc;
  std::vector<float> all = cpu_store(t, per_channel, prompt, kv_dim, &sc);
  const std::vector<float> tail = cpu_store(t, per_channel, later, kv_dim, &sc);
  all.insert(all.end(), tail.begin(), tail.end());
  return all;
}

// A device cache side of max_ctx rows filled with rows [0, n) of x, calibrated on all n rows (as
// one prompt store).
struct DevKv {
  Dev<uint8_t> data;
  Dev<float> scale;
  cu::KvView view;
  DevKv(cu::KvType t, bool per_channel, const std::vector<float>& x, int64_t n, int64_t max_ctx,
        int64_t kv_dim)
      : data(size_t(max_ctx * kv_dim) * kv_elem(t)),
        scale(std::vector<float>(size_t(kv_dim), 0.0f)) {  // zero: not calibrated
    view = {t, data.get(), scale.get(), per_channel};
    Dev<float> dx(x);
    Dev<int32_t> zero(std::vector<int32_t>{0});
    EXPECT_EQ(cu::kv_calibrate(view, dx.get(), n, kv_dim, nullptr), 0);
    EXPECT_EQ(cu::kv_append(view, dx.get(), n, kv_dim, zero.get(), nullptr), 0);
    EXPECT_EQ(cu::synchronize(), 0);
  }
};

struct AttnCase {
  int64_t n_ctx, T, heads, kv_heads, head_dim;
};
const AttnCase kCases[] = {{1, 1, 2, 1, 64},     {7, 1, 8, 2, 128},     {100, 3, 4, 4, 64},
                           {513, 1, 16, 8, 128}, {2048, 1, 16, 8, 128}, {300, 2, 4, 2, 256}};

TEST_F(CudaOps, KvStoreMatchesCpuCacheEmulation) {
  std::mt19937 g(21);
  const int64_t kv_dim = 256, n = 37;
  for (cu::KvType t :
       {cu::KvType::F32, cu::KvType::BF16, cu::KvType::F16, cu::KvType::INT8, cu::KvType::FP8})
    for (bool per_channel : {false, true}) {
      auto x = randv(size_t(n * kv_dim), g, ActType::F32, 1.0f);
      x[5] = 40.0f;  // an outlier channel sets a per-tensor scale
      DevKv kv(t, per_channel, x, n, 64, kv_dim);
      Dev<float> back(x.size());
      CU_OK(cu::kv_read(back.get(), kv.view, n, kv_dim, nullptr));
      // An int8 code has no -0: where the CPU's q * s gives -0.0 the device gives +0.0 (equal
      // values, different bits), so int8 stores are compared with -0 == +0.
      const bool zero_sign_free = t == cu::KvType::INT8;
      const Cmp r = compare(back.host(), cpu_store(t, per_channel, x, kv_dim), zero_sign_free);
      print("kv_store",
            shape_str("%s%s [%ld,%ld]", kv_name(t), per_channel ? " per-channel" : "", long(n),
                      long(kv_dim)),
            r);
      EXPECT_EQ(r.mismatches, 0u) << kv_name(t);

      // A later store keeps the prompt's scales: larger values saturate, as on the CPU.
      auto y = randv(size_t(3 * kv_dim), g, ActType::F32, 8.0f);
      Dev<float> dy(y), back2(size_t((n + 3) * kv_dim));
      Dev<int32_t> at(std::vector<int32_t>{int32_t(n)});
      CU_OK(cu::kv_calibrate(kv.view, dy.get(), 3, kv_dim, nullptr));  // must be a no-op now
      CU_OK(cu::kv_append(kv.view, dy.get(), 3, kv_dim, at.get(), nullptr));
      CU_OK(cu::kv_read(back2.get(), kv.view, n + 3, kv_dim, nullptr));
      const std::vector<float> want = cpu_store_then(t, per_channel, x, y, kv_dim);
      const Cmp r2 = compare(back2.host(), want, zero_sign_free);
      print("kv_store_later",
            shape_str("%s%s +3 rows x8", kv_name(t), per_channel ? " per-channel" : ""), r2);
      EXPECT_EQ(r2.mismatches, 0u) << kv_name(t);

      // K and V in one launch (kv_append_pair): each cache gets its own rows and scales.
      auto x2 = randv(size_t(n * kv_dim), g, ActType::F32, 2.0f);
      auto z = randv(size_t(3 * kv_dim), g, ActType::F32, 8.0f);
      DevKv ka(t, per_channel, x, n, 64, kv_dim), va(t, per_channel, x2, n, 64, kv_dim);
      Dev<float> dz(z), kback(size_t((n + 3) * kv_dim)), vback(size_t((n + 3) * kv_dim));
      CU_OK(cu::kv_append_pair(ka.view, dy.get(), va.view, dz.get(), 3, kv_dim, at.get(), nullptr));
      CU_OK(cu::kv_read(kback.get(), ka.view, n + 3, kv_dim, nullptr));
      CU_OK(cu::kv_read(vback.get(), va.view, n + 3, kv_dim, nullptr));
      const std::vector<float> vwant = cpu_store_then(t, per_channel, x2, z, kv_dim);
      const Cmp rk = compare(kback.host(), want, zero_sign_free);
      const Cmp rv = compare(vback.host(), vwant, zero_sign_free);
      print("kv_append_pair",
            shape_str("%s%s +3 rows k and v", kv_name(t), per_channel ? " per-channel" : ""), rv);
      EXPECT_EQ(rk.mismatches, 0u) << kv_name(t);
      EXPECT_EQ(rv.mismatches, 0u) << kv_name(t);
    }
}

// Runs eager (fused == false) or flash attention on the device and on the CPU for one case.
void run_attention(const AttnCase& c, ActType act, bool fused, cu::KvType kvt, bool per_channel,
                   bool fp16_acc, int splits, std::mt19937& g) {
  const int64_t kv_dim = c.kv_heads * c.head_dim, n_kv = c.n_ctx + c.T - 1, pos0 = c.n_ctx - 1;
  const float scale = 1.0f / std::sqrt(float(c.head_dim));
  const auto q = randv(size_t(c.T * c.heads * c.head_dim), g, ActType::BF16, 1.0f);
  const auto k = randv(size_t(n_kv * kv_dim), g, ActType::BF16, 1.0f);
  const auto v = randv(size_t(n_kv * kv_dim), g, ActType::BF16, 1.0f);
  DevKv dk(kvt, per_channel, k, n_kv, n_kv + 8, kv_dim),
      dv(kvt, per_channel, v, n_kv, n_kv + 8, kv_dim);
  const std::vector<float> ks = cpu_store(kvt, per_channel, k, kv_dim);
  const std::vector<float> vs = cpu_store(kvt, per_channel, v, kv_dim);
  Dev<float> dq(q), dout(q.size());
  Dev<int32_t> dpos(std::vector<int32_t>{int32_t(pos0)});
  const cu::AttnShape s{c.T, c.heads, c.kv_heads, c.head_dim, n_kv + 8, scale};
  if (fused) {
    Dev<float> work(size_t(cu::attention_flash_work_floats(s, splits)));
    CU_OK(cu::attention_flash(dout.get(), dq.get(), dk.view, dv.view, dpos.get(), s, to_cu(act),
                              fp16_acc, splits, work.get(), nullptr));
    EXPECT_EQ(cu::synchronize(), 0);
  } else {
    Dev<float> scores(size_t(c.T * c.heads * s.max_ctx));
    CU_OK(cu::attention_eager(dout.get(), dq.get(), dk.view, dv.view, dpos.get(), s, to_cu(act),
                              scores.get(), nullptr));
    EXPECT_EQ(cu::synchronize(), 0);
  }
  std::vector<float> want(q.size()), scratch(size_t(std::max(n_kv, c.head_dim)));
  const int64_t group = c.heads / c.kv_heads;
  for (int64_t t = 0; t < c.T; ++t)
    for (int64_t h = 0; h < c.heads; ++h) {
      const size_t qo = size_t((t * c.heads + h) * c.head_dim);
      const size_t ko = size_t((h / group) * c.head_dim);
      const int64_t ctx = pos0 + t + 1;
      if (fused)
        cpu::fused_attention(&want[qo], &q[qo], &ks[ko], &vs[ko], ctx, kv_dim, c.head_dim, scale,
                             act, fp16_acc, scratch.data());
      else
        cpu::attention_head(&want[qo], &q[qo], &ks[ko], &vs[ko], ctx, kv_dim, c.head_dim, scale,
                            act, scratch.data());
    }
  const Cmp r = compare(dout.host(), want);
  print(fused ? (fp16_acc ? "flash_fp16acc" : "flash_attn") : "eager_attn",
        shape_str("ctx=%ld T=%ld h=%ld/%ld hd=%ld %s kv=%s%s splits=%d", long(c.n_ctx), long(c.T),
                  long(c.heads), long(c.kv_heads), long(c.head_dim), act_name(act), kv_name(kvt),
                  per_channel ? "/ch" : "", fused ? splits : 0),
        r);
  if (!fused) {
    // Same arithmetic but exp (CUDA's double exp vs libm's expf) and the double sum's order.
    EXPECT_LT(r.nmse, act == ActType::F32 ? 1e-12 : 1e-6);
    EXPECT_LE(r.mismatches, r.n / 50 + 1);
  } else {
    // An online softmax split over blocks vs the CPU's one pass: fp32 reassociation, then the
    // output rounding; fp16 accumulation is sequential in both but feeds the same softmax.
    EXPECT_LT(r.nmse, act == ActType::F32 ? 1e-10 : 1e-5);
  }
}

TEST_F(CudaOps, EagerAttentionMatchesCpu) {
  std::mt19937 g(22);
  for (const AttnCase& c : kCases)
    for (ActType act : {ActType::BF16, ActType::F32})
      run_attention(c, act, false, act == ActType::F32 ? cu::KvType::F32 : cu::KvType::BF16, false,
                    false, 0, g);
}

TEST_F(CudaOps, FlashDecodingMatchesCpuFusedAttention) {
  std::mt19937 g(23);
  for (const AttnCase& c : kCases)
    for (int splits : {1, 4, 16})
      run_attention(c, ActType::BF16, true, cu::KvType::BF16, false, false, splits, g);
  // The bench's decode shape (capacity 384, 129-384 keys) in the backend's decode splits, some of
  // them empty at 129 keys and 64 splits.
  for (const AttnCase& cd : {AttnCase{384, 1, 16, 8, 128}, AttnCase{129, 1, 16, 8, 128}})
    for (int splits : {12, 24, 48, 64})
      for (cu::KvType t : {cu::KvType::BF16, cu::KvType::FP8})
        run_attention(cd, ActType::BF16, true, t, false, false, splits, g);
  run_attention(AttnCase{384, 1, 16, 8, 128}, ActType::BF16, true, cu::KvType::BF16, false, true,
                48, g);
  const AttnCase c{513, 2, 16, 8, 128};
  run_attention(c, ActType::F32, true, cu::KvType::F32, false, false, 8, g);
  for (cu::KvType t : {cu::KvType::F16, cu::KvType::INT8, cu::KvType::FP8})
    for (bool per_channel : {false, true})
      run_attention(c, ActType::BF16, true, t, per_channel, false, 8, g);
  run_attention(c, ActType::BF16, true, cu::KvType::BF16, false, true, 8, g);
}

}  // namespace
}  // namespace fusecheck
