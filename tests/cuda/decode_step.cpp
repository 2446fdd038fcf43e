// One batch-1 decode step of a Qwen3-0.6B-shaped stack (28 layers, hidden 1024, 16/8 heads of
// 128, FFN 3072, vocab 151936, tied embeddings; 1.19 GB of bf16 weights) on random weights, through
// the standard kernels and through the fused ones, captured as CUDA graphs and replayed. The cache
// holds `kCtx` positions; the position is read from device memory. Prints ms/step, tok/s and the
// fraction of the copy-bandwidth roofline (weight bytes / copy GB/s). Kernels only: no model
// loading, no sampling beyond argmax.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bandwidth_tool.h"
#include "kernels/cuda/cuda_ops.h"

namespace cu = fusecheck::cuda;

namespace {

constexpr int64_t kLayers = 28, kDim = 1024, kHeads = 16, kKvHeads = 8, kHd = 128, kFfn = 3072,
                  kVocab = 151936, kCtx = 200, kMaxCtx = 512, kSplits = 8;
constexpr int64_t kQ = kHeads * kHd, kKv = kKvHeads * kHd;

struct Layer {
  cu::DevWeight q, k, v, o, gate, up, down;
  float *in_gain, *post_gain, *q_gain, *k_gain;
  cu::KvView kc, vc;
};

struct Stack {
  std::vector<Layer> layers;
  cu::DevWeight embed;  // [vocab, dim], also the LM head
  float* final_gain;
  float *cos_tab, *sin_tab;
  int32_t *pos, *token;
  // Activations: h, delta, normed, sum: [dim]; q: [kQ]; k, v: [kKv]; attn: [kQ]; ffn, gate, up:
  // [kFfn]; logits: [vocab]; scores: [heads, max_ctx]; work: flash-decoding partials.
  float *h, *delta, *normed, *sum, *q, *k, *v, *attn, *ffn, *gate, *up, *logits, *scores, *work;
};

cu::DevWeight weight(int64_t rows, int64_t cols, std::mt19937& g) {
  void* d = bw_dalloc(size_t(rows * cols) * 2);
  bw_fill_bf16(d, size_t(rows * cols), 0.03f, g);
  return {cu::WType::BF16, d, rows, cols};
}
float* vec(int64_t n, float scale, float mean, std::mt19937& g) {
  float* d = static_cast<float*>(bw_dalloc(size_t(n) * 4));
  bw_fill_f32(d, size_t(n), scale, mean, g);
  return d;
}
cu::KvView cache(std::mt19937& g) {
  void* d = bw_dalloc(size_t(kMaxCtx * kKv) * 2);
  bw_fill_bf16(d, size_t(kMaxCtx * kKv), 1.0f, g);
  return {cu::KvType::BF16, d, nullptr, false};
}

Stack build(std::mt19937& g) {
  Stack s;
  for (int64_t l = 0; l < kLayers; ++l) {
    Layer L;
    L.q = weight(kQ, kDim, g), L.k = weight(kKv, kDim, g), L.v = weight(kKv, kDim, g);
    L.o = weight(kDim, kQ, g), L.gate = weight(kFfn, kDim, g), L.up = weight(kFfn, kDim, g);
    L.down = weight(kDim, kFfn, g);
    L.in_gain = vec(kDim, 0.1f, 1.0f, g), L.post_gain = vec(kDim, 0.1f, 1.0f, g);
    L.q_gain = vec(kHd, 0.1f, 1.0f, g), L.k_gain = vec(kHd, 0.1f, 1.0f, g);
    L.kc = cache(g), L.vc = cache(g);
    s.layers.push_back(L);
  }
  s.embed = weight(kVocab, kDim, g);
  s.final_gain = vec(kDim, 0.1f, 1.0f, g);
  s.cos_tab = vec(kMaxCtx * kHd / 2, 0.5f, 0.0f, g),
  s.sin_tab = vec(kMaxCtx * kHd / 2, 0.5f, 0.0f, g);
  s.pos = static_cast<int32_t*>(bw_dalloc(4)), s.token = static_cast<int32_t*>(bw_dalloc(4));
  const int32_t pos = int32_t(kCtx), tok = 42;
  BW_CHECK(cudaMemcpy(s.pos, &pos, 4, cudaMemcpyHostToDevice));
  BW_CHECK(cudaMemcpy(s.token, &tok, 4, cudaMemcpyHostToDevice));
  s.h = vec(kDim, 1, 0, g), s.delta = vec(kDim, 1, 0, g), s.normed = vec(kDim, 1, 0, g);
  s.sum = vec(kDim, 1, 0, g), s.q = vec(kQ, 1, 0, g), s.k = vec(kKv, 1, 0, g);
  s.v = vec(kKv, 1, 0, g), s.attn = vec(kQ, 1, 0, g), s.ffn = vec(kFfn, 1, 0, g);
  s.gate = vec(kFfn, 1, 0, g), s.up = vec(kFfn, 1, 0, g), s.logits = vec(kVocab, 1, 0, g);
  s.scores = vec(kHeads * kMaxCtx, 1, 0, g);
  const cu::AttnShape as{1, kHeads, kKvHeads, kHd, kMaxCtx, 0.0883883f};
  s.work = vec(cu::attention_flash_work_floats(as, int(kSplits)), 1, 0, g);
  return s;
}

const cu::AttnShape kAttn{1, kHeads, kKvHeads, kHd, kMaxCtx, 0.0883883f};
constexpr cu::Act A = cu::Act::BF16;

// PyTorch eager's sequence of ops (docs/NUMERICS.md, standard path).
void standard_step(const Stack& s, cudaStream_t st) {
  BW_CHECK(cu::embed(s.h, s.token, 1, s.embed, st));
  for (const Layer& L : s.layers) {
    BW_CHECK(cu::rmsnorm(s.normed, s.h, L.in_gain, 1, kDim, 1e-6f, A, st));
    BW_CHECK(cu::gemv(s.q, s.normed, 1, L.q, nullptr, A, st));
    BW_CHECK(cu::gemv(s.k, s.normed, 1, L.k, nullptr, A, st));
    BW_CHECK(cu::gemv(s.v, s.normed, 1, L.v, nullptr, A, st));
    BW_CHECK(cu::rmsnorm(s.q, s.q, L.q_gain, kHeads, kHd, 1e-6f, A, st));
    BW_CHECK(cu::rmsnorm(s.k, s.k, L.k_gain, kKvHeads, kHd, 1e-6f, A, st));
    BW_CHECK(cu::rope(s.q, 1, kHeads, kHd, s.cos_tab, s.sin_tab, s.pos, A, st));
    BW_CHECK(cu::rope(s.k, 1, kKvHeads, kHd, s.cos_tab, s.sin_tab, s.pos, A, st));
    BW_CHECK(cu::kv_append_pair(L.kc, s.k, L.vc, s.v, 1, kKv, s.pos, st));
    BW_CHECK(cu::attention_eager(s.attn, s.q, L.kc, L.vc, s.pos, kAttn, A, s.scores, st));
    BW_CHECK(cu::gemv(s.delta, s.attn, 1, L.o, nullptr, A, st));
    BW_CHECK(cu::add(s.h, s.h, s.delta, kDim, A, st));
    BW_CHECK(cu::rmsnorm(s.normed, s.h, L.post_gain, 1, kDim, 1e-6f, A, st));
    BW_CHECK(cu::gemv(s.gate, s.normed, 1, L.gate, nullptr, A, st));
    BW_CHECK(cu::gemv(s.up, s.normed, 1, L.up, nullptr, A, st));
    BW_CHECK(cu::silu_mul(s.ffn, s.gate, s.up, kFfn, A, st));
    BW_CHECK(cu::gemv(s.delta, s.ffn, 1, L.down, nullptr, A, st));
    BW_CHECK(cu::add(s.h, s.h, s.delta, kDim, A, st));
  }
  BW_CHECK(cu::rmsnorm(s.normed, s.h, s.final_gain, 1, kDim, 1e-6f, A, st));
  BW_CHECK(cu::gemv(s.logits, s.normed, 1, s.embed, nullptr, A, st));
  BW_CHECK(cu::argmax(s.token, s.logits, kVocab, st));
}

// The fused groups: add_rmsnorm (residual deferred into the next layer's norm), rmsnorm_qkv on the
// unrounded sum, qk_norm_rope, flash-decoding, gate_up_silu. `parts` selects kernel classes for a
// time breakdown: kProj (the weight-reading kernels), kAttn (KV append + flash-decoding), kSmall
// (embed, norms, RoPE, argmax); the step is all three. adds_in_proj: add_rmsnorm inside the
// projections, as the engine runs it: the MLP side's in o_proj's epilogue and gate_up's prologue
// (gemv_add_residual, rmsnorm_gate_up_silu), the next layer's residual add in down_proj's epilogue
// (only layer 0 and the final norm launch add_rmsnorm), and the KV append in the q/k norm+RoPE
// launch (qk_norm_rope_kv_append); false: add_rmsnorm twice a layer and kv_append_pair on its own
// (the engine before).
constexpr int kProj = 1, kAttnPart = 2, kSmall = 4, kAll = 7;
void fused_step(const Stack& s, cudaStream_t st, int parts = kAll,
                cu::GemvVariant head = cu::GemvVariant::kDefault, bool adds_in_proj = true) {
  const bool P = parts & kProj, At = parts & kAttnPart, Sm = parts & kSmall;
  if (Sm) BW_CHECK(cu::embed(s.h, s.token, 1, s.embed, st));
  const float* delta = nullptr;
  for (size_t l = 0; l < s.layers.size(); ++l) {
    const Layer& L = s.layers[l];
    const bool last = l + 1 == s.layers.size();
    if (Sm && (l == 0 || !adds_in_proj))
      BW_CHECK(cu::add_rmsnorm(s.h, delta, s.normed, s.sum, L.in_gain, 1, kDim, 1e-6f, A, A, st));
    if (P)
      BW_CHECK(cu::rmsnorm_qkv(s.q, s.k, s.v, s.sum, 1, L.in_gain, 1e-6f, L.q, L.k, L.v, nullptr,
                               nullptr, nullptr, A, st));
    if (Sm && adds_in_proj) {  // with the KV append (counted as a small op here)
      BW_CHECK(cu::qk_norm_rope_kv_append(s.q, kHeads, L.q_gain, s.k, kKvHeads, L.k_gain, s.v, L.kc,
                                          L.vc, 1, kHd, 1e-6f, s.cos_tab, s.sin_tab, s.pos, A, st));
    } else if (Sm) {
      BW_CHECK(cu::qk_norm_rope_pair(s.q, kHeads, L.q_gain, s.k, kKvHeads, L.k_gain, 1, kHd, 1e-6f,
                                     s.cos_tab, s.sin_tab, s.pos, A, st));
    }
    if (At && !adds_in_proj) BW_CHECK(cu::kv_append_pair(L.kc, s.k, L.vc, s.v, 1, kKv, s.pos, st));
    if (At)
      BW_CHECK(cu::attention_flash(s.attn, s.q, L.kc, L.vc, s.pos, kAttn, A, false, int(kSplits),
                                   s.work, st));
    if (P && adds_in_proj) {
      BW_CHECK(cu::gemv_add_residual(s.delta, s.h, s.sum, s.attn, 1, L.o, A, st));
      BW_CHECK(cu::rmsnorm_gate_up_silu(s.ffn, s.normed, s.sum, 1, L.post_gain, 1e-6f, L.gate, L.up,
                                        A, st));
      if (!last) BW_CHECK(cu::gemv_add_residual(s.delta, s.h, s.sum, s.ffn, 1, L.down, A, st));
    } else if (!adds_in_proj) {
      if (P) BW_CHECK(cu::gemv(s.delta, s.attn, 1, L.o, nullptr, A, st));
      if (Sm)
        BW_CHECK(cu::add_rmsnorm(s.h, s.delta, s.normed, nullptr, L.post_gain, 1, kDim, 1e-6f, A, A,
                                 st));
      if (P) BW_CHECK(cu::gate_up_silu(s.ffn, s.normed, 1, L.gate, L.up, A, st));
    }
    if (P && (last || !adds_in_proj)) BW_CHECK(cu::gemv(s.delta, s.ffn, 1, L.down, nullptr, A, st));
    delta = s.delta;
  }
  if (Sm)
    BW_CHECK(
        cu::add_rmsnorm(s.h, delta, s.normed, nullptr, s.final_gain, 1, kDim, 1e-6f, A, A, st));
  if (P) BW_CHECK(cu::gemv(s.logits, s.normed, 1, s.embed, nullptr, A, st, head));
  if (Sm) BW_CHECK(cu::argmax(s.token, s.logits, kVocab, st));
}

// The layers as one persistent launch (decoder_layers), the rest of the step as fused_step runs
// it: the same activations, so the two steps compute the same values.
cu::DecoderArgs persistent_args(const Stack& s) {
  std::vector<cu::DecoderLayerArgs> t(s.layers.size());
  for (size_t l = 0; l < t.size(); ++l) {
    const Layer& L = s.layers[l];
    cu::DecoderLayerArgs& d = t[l];
    d.wq = L.q.data, d.wk = L.k.data, d.wv = L.v.data, d.wo = L.o.data, d.wg = L.gate.data;
    d.wu = L.up.data, d.wd = L.down.data, d.in_norm = L.in_gain, d.post_norm = L.post_gain;
    d.q_norm = L.q_gain, d.k_norm = L.k_gain, d.kc = L.kc, d.vc = L.vc;
  }
  void* table = bw_dalloc(t.size() * sizeof(cu::DecoderLayerArgs));
  BW_CHECK(
      cudaMemcpy(table, t.data(), t.size() * sizeof(cu::DecoderLayerArgs), cudaMemcpyHostToDevice));
  cu::DecoderArgs a;
  a.layers = static_cast<const cu::DecoderLayerArgs*>(table), a.n_layers = int(kLayers);
  a.dim = int(kDim), a.ffn = int(kFfn), a.q_rows = int(kQ), a.kv_dim = int(kKv);
  a.q_heads = int(kHeads), a.kv_heads = int(kKvHeads), a.head_dim = int(kHd);
  a.splits = int(kSplits), a.eps = 1e-6f, a.scale = kAttn.scale, a.act = A;
  a.cos_tab = s.cos_tab, a.sin_tab = s.sin_tab, a.pos = s.pos;
  a.hidden = s.h, a.sum = s.sum, a.normed = s.normed, a.q = s.q, a.k = s.k, a.v = s.v;
  a.attn = s.attn, a.attn_out = s.delta, a.mlp_act = s.ffn, a.mlp_out = s.delta, a.work = s.work;
  auto* sync = static_cast<unsigned*>(bw_dalloc((1 + kHeads) * sizeof(unsigned)));
  BW_CHECK(cudaMemset(sync, 0, (1 + kHeads) * sizeof(unsigned)));
  a.barrier = sync, a.head_tickets = sync + 1;
  int blocks = 0;
  size_t smem = 0;
  BW_CHECK(cu::decoder_blocks(&blocks, &smem));
  BW_CHECK(cu::decoder_plan(a, cu::WType::BF16, blocks, smem));
  return a;
}

// layers false: the step's frame alone (embed, the norms, the LM head, argmax), which every
// persistent variant below includes: its time comes off theirs to give the layers' own.
void persistent_step(const Stack& s, const cu::DecoderArgs& a, cudaStream_t st,
                     bool layers = true) {
  BW_CHECK(cu::embed(s.h, s.token, 1, s.embed, st));
  BW_CHECK(cu::add_rmsnorm(s.h, nullptr, s.normed, s.sum, s.layers[0].in_gain, 1, kDim, 1e-6f, A, A,
                           st));
  if (layers) BW_CHECK(cu::decoder_layers(a, cu::WType::BF16, st));
  BW_CHECK(
      cu::add_rmsnorm(s.h, s.delta, s.normed, nullptr, s.final_gain, 1, kDim, 1e-6f, A, A, st));
  BW_CHECK(cu::gemv(s.logits, s.normed, 1, s.embed, nullptr, A, st));
  BW_CHECK(cu::argmax(s.token, s.logits, kVocab, st));
}

// The persistent step (schedule `diag`) against the per-op fused step from the same cache and
// token: the logits bit for bit. Each step's argmax overwrites the token it embeds, so both start
// from the same one. Every copy is ordered on the step's stream `st` (non-blocking: a plain
// cudaMemcpy would not wait for it), and the host reads only after the stream has finished.
void compare_logits(const Stack& s, cu::DecoderArgs a, cudaStream_t st, unsigned diag) {
  a.diag = diag;
  const size_t bytes = size_t(kVocab) * 4;
  std::vector<float> want(static_cast<size_t>(kVocab)), got(static_cast<size_t>(kVocab));
  static const int32_t tok = 42;
  BW_CHECK(cudaMemcpyAsync(s.token, &tok, 4, cudaMemcpyHostToDevice, st));
  fused_step(s, st);
  BW_CHECK(cudaMemcpyAsync(want.data(), s.logits, bytes, cudaMemcpyDeviceToHost, st));
  BW_CHECK(cudaMemcpyAsync(s.token, &tok, 4, cudaMemcpyHostToDevice, st));
  BW_CHECK(cudaMemsetAsync(s.logits, 0xff, bytes, st));  // NaN: every logit must be written
  persistent_step(s, a, st);
  BW_CHECK(cudaMemcpyAsync(got.data(), s.logits, bytes, cudaMemcpyDeviceToHost, st));
  BW_CHECK(cudaMemcpyAsync(s.token, &tok, 4, cudaMemcpyHostToDevice, st));
  BW_CHECK(cudaStreamSynchronize(st));
  size_t differ = 0;
  for (size_t i = 0; i < got.size(); ++i) differ += std::memcmp(&got[i], &want[i], 4) != 0;
  std::printf(
      "  persistent step (diag %u) logits against the per-op fused step's: %zu of %zu "
      "differ%s\n",
      diag, differ, got.size(), differ ? " (BAD)" : " (bit-identical)");
}

// Block 0's clock between the kernel's trace points (cu::kDecoderMarks a layer), averaged over
// the layers: where a layer's time goes.
void persistent_trace(const Stack& s, cu::DecoderArgs a, cudaStream_t st, unsigned diag) {
  constexpr int M = cu::kDecoderMarks;
  const int n = int(M * kLayers + 1);
  auto* trace = static_cast<long long*>(bw_dalloc(size_t(n) * sizeof(long long)));
  a.trace = trace, a.diag = diag;
  for (int rep = 0; rep < 3; ++rep) persistent_step(s, a, st);  // warm, then the traced one
  BW_CHECK(cudaStreamSynchronize(st));
  std::vector<long long> t(static_cast<size_t>(n));
  BW_CHECK(cudaMemcpy(t.data(), trace, t.size() * sizeof(long long), cudaMemcpyDeviceToHost));
  int khz = 0;
  BW_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0));
  const char* names[M] = {"qkv tile wait",    "qkv + barrier",     "rope + barrier",
                          "first split",      "rest of attention", "attention barrier",
                          "o_proj + barrier", "gate_up tile wait", "gate_up + barrier",
                          "down + barrier"};
  std::printf("  per layer (diag %u), block 0's clock between trace points (%d MHz):\n   ", diag,
              khz / 1000);
  double total = 0;
  for (int p = 0; p < M; ++p) {
    double cyc = 0;
    for (int l = 0; l < int(kLayers); ++l)
      cyc += double(t[size_t(M * l + p + 1)] - t[size_t(M * l + p)]);
    const double us = cyc / kLayers / (khz / 1e3);
    total += us;
    std::printf(" %s %.2f us%s", names[p], us, p + 1 < M ? "," : "");
  }
  std::printf("; %.2f us a layer\n", total);
}

// The persistent step as a graph, then with parts of its work left out (barriers and the phase
// structure kept), then block 0's clock at each phase start, averaged over the layers.
void persistent_benchmark(const Stack& s, cudaStream_t st, double fused_ms, double roof) {
  cu::DecoderArgs a = persistent_args(s);
  std::printf("  persistent: %d blocks, %zu bytes of shared memory a block\n", a.blocks,
              a.smem_bytes);
  // The schedules of the same arithmetic: the logits bit for bit. `first`: the schedule first
  // measured (a RoPE phase, tickets, a block's units on consecutive items), the engine's.
  const unsigned first = cu::kDecoderEngineSchedule;
  for (const unsigned diag :
       {0u, unsigned(cu::kDecoderAcqRel), unsigned(cu::kDecoderTickets),
        unsigned(cu::kDecoderRopePhase), first, unsigned(first | cu::kDecoderAcqRel),
        unsigned(cu::kDecoderKeyAtATime), unsigned(cu::kDecoderGenericKv)})
    compare_logits(s, a, st, diag);
  const unsigned none = cu::kDecoderSkipWeights | cu::kDecoderSkipGemv | cu::kDecoderSkipAttn;
  const unsigned quiet = cu::kDecoderSkipWeights | cu::kDecoderSkipGemv;
  const struct {
    const char* name;
    unsigned diag;
  } runs[] = {
      {"the layers as one persistent launch", 0},
      {"  release/acquire barriers", cu::kDecoderAcqRel},
      {"  with tickets (the last split's unit reduces)", cu::kDecoderTickets},
      {"  with a RoPE phase", cu::kDecoderRopePhase},
      {"  the schedule first measured", first},
      {"  the schedule first measured, items dealt", first & ~cu::kDecoderPackAttn},
      {"  without attention (and its RoPE)", cu::kDecoderSkipAttn},
      {"  weights streamed, no arithmetic", cu::kDecoderSkipGemv | cu::kDecoderSkipAttn},
      {"  no weights: attention with its RoPE", quiet},
      {"  no weights: the same, a key at a time", quiet | cu::kDecoderKeyAtATime},
      {"  no weights: the same, the split alone",
       quiet | cu::kDecoderRopePhase | cu::kDecoderSkipRope},
      {"  a key at a time", cu::kDecoderKeyAtATime},
      {"  cache loads through kv_load's runtime switch", cu::kDecoderGenericKv},
      {"  no weights: attention, kv_load's runtime switch", quiet | cu::kDecoderGenericKv},
      {"  no weights: the first schedule's RoPE and attention", quiet | first},
      {"  barriers alone (5 a layer)", none},
      {"  barriers alone, release/acquire", none | cu::kDecoderAcqRel},
      {"  barriers alone (6 a layer)", none | cu::kDecoderRopePhase | cu::kDecoderSkipRope}};
  const auto time_graph = [&](bool layers) {
    cudaGraphExec_t ge = bw_capture(st, [&] { persistent_step(s, a, st, layers); });
    const double ms = bw_median_ms(st, 50, [&] { BW_CHECK(cudaGraphLaunch(ge, st)); });
    BW_CHECK(cudaGraphExecDestroy(ge));
    return ms;
  };
  const double frame_ms = time_graph(false);
  std::printf("  %-48s graph %.3f ms (comes off each row's \"layers\")\n",
              "the frame alone: embed, norms, LM head, argmax", frame_ms);
  for (const auto& r : runs) {
    a.diag = r.diag;
    const double ms = time_graph(true);
    std::printf(
        "  %-48s graph %.3f ms = %.0f tok/s, %.1f%% of roofline, %.2fx the fused step; layers "
        "%.3f ms = %.2f us a layer\n",
        r.name, ms, 1e3 / ms, 100.0 * (1e3 / ms) / roof, fused_ms / ms, ms - frame_ms,
        1e3 * (ms - frame_ms) / double(kLayers));
  }
  for (const unsigned diag : {0u, first}) persistent_trace(s, a, st, diag);
}

}  // namespace

int decode_step_benchmark(cudaStream_t st, double copy_gbs, std::mt19937& g) {
  const Stack s = build(g);
  const double bytes =
      double(kLayers) * 2.0 * double(kQ * kDim + 2 * kKv * kDim + kDim * kQ + 3 * kFfn * kDim) +
      2.0 * double(kVocab * kDim);
  const double roof = copy_gbs * 1e9 / bytes;
  std::printf(
      "decode step, Qwen3-0.6B shape, bf16, ctx %ld, %.3f GB of weights: roofline %.0f tok/s\n",
      long(kCtx), bytes / 1e9, roof);
  double std_ms = 0, fused_ms = 0;
  for (int fused = 0; fused < 2; ++fused) {
    auto step = [&] { fused ? fused_step(s, st) : standard_step(s, st); };
    const double plain = bw_median_ms(st, 20, step);
    cudaGraphExec_t ge = bw_capture(st, step);
    const double graph = bw_median_ms(st, 50, [&] { BW_CHECK(cudaGraphLaunch(ge, st)); });
    BW_CHECK(cudaGraphExecDestroy(ge));
    if (!fused) std_ms = graph;
    if (fused) fused_ms = graph;
    std::printf(
        "  %-8s stream %.3f ms (%.0f tok/s) | graph %.3f ms = %.0f tok/s, %.1f%% of roofline%s\n",
        fused ? "fused" : "standard", plain, 1e3 / plain, graph, 1e3 / graph,
        100.0 * (1e3 / graph) / roof,
        fused ? (std::string(", ") + std::to_string(std_ms / graph).substr(0, 4) + "x standard")
                    .c_str()
              : "");
  }
  persistent_benchmark(s, st, fused_ms, roof);
  {  // the LM head through the staged kernel instead of u16
    cudaGraphExec_t ge = bw_capture(st, [&] { fused_step(s, st, kAll, cu::GemvVariant::kStaged); });
    const double ms = bw_median_ms(st, 50, [&] { BW_CHECK(cudaGraphLaunch(ge, st)); });
    BW_CHECK(cudaGraphExecDestroy(ge));
    std::printf("  fused, LM head staged: graph %.3f ms = %.0f tok/s\n", ms, 1e3 / ms);
  }
  {  // add_rmsnorm twice a layer and the KV append alone (before the projections and RoPE took
     // them in)
    cudaGraphExec_t ge = bw_capture(
        st, [&] { fused_step(s, st, kAll, cu::GemvVariant::kDefault, /*adds_in_proj=*/false); });
    const double ms = bw_median_ms(st, 50, [&] { BW_CHECK(cudaGraphLaunch(ge, st)); });
    BW_CHECK(cudaGraphExecDestroy(ge));
    std::printf(
        "  fused, add_rmsnorm (2 a layer) and kv_append launched alone: graph %.3f ms = "
        "%.0f tok/s\n",
        ms, 1e3 / ms);
  }
  // Where the fused step's time goes: each class of kernels alone, as its own graph.
  const struct {
    const char* name;
    int parts;
  } classes[] = {{"projections (qkv, o + add, norm + gate_up, down + add, lm_head)", kProj},
                 {"attention (kv append, flash-decoding)", kAttnPart},
                 {"small ops (embed, add_rmsnorm, qk_norm_rope + kv append, argmax)", kSmall}};
  for (const auto& c : classes) {
    cudaGraphExec_t ge = bw_capture(st, [&] { fused_step(s, st, c.parts); });
    const double ms = bw_median_ms(st, 50, [&] { BW_CHECK(cudaGraphLaunch(ge, st)); });
    BW_CHECK(cudaGraphExecDestroy(ge));
    std::printf("    fused step, %-52s alone: %.3f ms\n", c.name, ms);
  }
  int32_t tok = -1;
  BW_CHECK(cudaMemcpy(&tok, s.token, 4, cudaMemcpyDeviceToHost));
  std::printf("  last argmax token %d (in [0, %ld): %s)\n", tok, long(kVocab),
              tok >= 0 && tok < kVocab ? "ok" : "BAD");
  return tok >= 0 && tok < kVocab ? 0 : 1;
}
