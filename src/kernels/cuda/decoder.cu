// A fused decode step's layers as one persistent launch (decoder_layers, cuda_ops.h): one block
// per SM runs every layer's ops in phases separated by grid barriers, and streams each phase's
// weights into shared memory while the phases before it run.
//
// Why: per-op decode is bound by the chain of ~7 dependent launches a layer (~5 µs each at the
// 0.6B shape), not by its 30 MB of weights (~7 µs at the HBM's rate). Here the weight loads
// depend on nothing, so they are issued two phases ahead (cp.async into a block's two tile
// buffers) and overlap the barriers, the attention and the other phases' arithmetic.
//
// Numerics: bit-identical to the per-op kernels the model issues for a fully fused layer
// (docs/NUMERICS.md, "The persistent decode kernel"): every value is formed by the same
// statements in the same order: the contract dot per row (lane k FMAs elements k, k + 32, ...,
// then warp_fold), the staged kernels' sums of squares (block_sum_squares over the same active
// threads), norm_rope_head, the attention's 4-warp splits, their merge and the 8-warp reduce's
// summation order, and the same roundings.
//
// Phases of layer l (B = a grid barrier):
//   Q   rmsnorm_qkv on sum: every block normalises the row itself, then its rows of [wq; wk; wv]
//   B   A   attention: 4-warp units per (head, split), items dealt to the blocks in turn; each
//           unit ropes its q head (qk_norm_rope_kv_append's statements), the units whose split
//           holds the new position also the k head, and store k and v there
//   B   O   every block reduces every head's splits (flash_reduce's order), then o_proj with the
//           residual add in the epilogue (gemv_add_residual)
//   B   G   add_rmsnorm's norm on sum, then gate_up_silu (rmsnorm_gate_up_silu; block 0 stores
//           normed)
//   B   D   down_proj with the next layer's residual add (gemv_add_residual), or plain for the
//           last layer
// DecoderArgs::diag selects the schedule measured first, which the engine runs
// (kDecoderEngineSchedule): a RoPE phase of its own, ticket reduces. Both ran at the same speed.
// Weight tiles: Q and G use buffer 0, O and D buffer 1; a phase's tile is issued right after the
// phase two before it has finished with that buffer, so one group is in flight beyond the one a
// phase waits for (cp.async.wait_group 1).
#include <algorithm>

#include "kernels/cuda/decode_parts.cuh"

namespace fusecheck::cuda {
namespace {

constexpr int kWarps = 16, kThreads = 32 * kWarps;
constexpr int kUnits = kWarps / kSplitWarps;  // attention units per block
// Floats of a unit's scratch: the reduce's [kReduceWarps, kMaxHeadDim] partials, then e[splits]
// and 1 / l; the split's part[kSplitWarps][kMaxHeadDim + 2] fits in front of it.
constexpr int kMaxSplits = 64;
constexpr int kUnitFloats = kReduceWarps * kMaxHeadDim + kMaxSplits + 4;
static_assert(kSplitWarps * (kMaxHeadDim + 2) + 2 * kMaxHeadDim <= kUnitFloats);  // part, qs, ks
// Barrier spins before the kernel traps instead of hanging (a cooperative launch guarantees
// every block is resident, so this only fires on a bug): ~10 s of L2 round trips.
constexpr long long kMaxSpins = 1ll << 25;

// The weight tiles: cp.async pieces from every thread, one group per tile, so a phase waits with
// wait_group 1 for the tile issued two tiles ago. (TMA bulk rows on an mbarrier, and the barrier's
// thread in a warp that loads no weights, measured no faster on an H100: docs/PERFORMANCE.md.)
__device__ __forceinline__ void tile_ready() {
  cp_async_wait<1>();
  __syncthreads();
}

// Release/acquire at GPU scope: a thread's release, after a __syncthreads, publishes every write
// its block made before it (cumulativity); an acquire, followed by a __syncthreads, makes what it
// observed visible to the whole block. No full fence (fence.sc) is needed.
__device__ __forceinline__ void red_add_release(unsigned* p, unsigned v) {
  asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ unsigned atom_add_acq_rel(unsigned* p, unsigned v) {
  unsigned old;
  asm volatile("atom.add.acq_rel.gpu.global.u32 %0, [%1], %2;"
               : "=r"(old)
               : "l"(p), "r"(v)
               : "memory");
  return old;
}
__device__ __forceinline__ unsigned ld_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// Every block arrives, then waits for all: the writes before it are visible to every block after
// it. *bar counts arrivals over the launch; target: this block's count of barriers passed ×
// blocks. Thread 0 arrives and polls. sc: the fence.sc pattern of cooperative groups' grid sync;
// else release/acquire atomics (kDecoderAcqRel).
__device__ __forceinline__ void grid_barrier(unsigned* bar, unsigned& target, bool sc) {
  __syncthreads();
  target += gridDim.x;
  if (threadIdx.x == 0) {
    long long spins = 0;
    if (sc) {
      __threadfence();
      atomicAdd(bar, 1u);
      while (*static_cast<volatile unsigned*>(bar) < target)
        if (++spins > kMaxSpins) __trap();
      __threadfence();
    } else {
      red_add_release(bar, 1u);
      while (ld_acquire(bar) < target)
        if (++spins > kMaxSpins) __trap();
    }
  }
  __syncthreads();
}

// The decode-step tool's clock (DecoderArgs::trace): block 0's thread 0 at mark m of layer l.
__device__ __forceinline__ void mark(const DecoderArgs& a, int l, int m) {
  if (a.trace && blockIdx.x == 0 && threadIdx.x == 0) a.trace[kDecoderMarks * l + m] = clock64();
}

// Named barrier of one attention unit's 128 threads (ids 1 .. kUnits; 0 is __syncthreads').
__device__ __forceinline__ void unit_sync(int unit) {
  asm volatile("bar.sync %0, %1;" ::"r"(unit + 1), "r"(kSplitWarps * 32) : "memory");
}

// Copies rows [0, nrows) of a tile into buf, row j from src(j), row_bytes each (a 16-byte
// multiple), as one cp.async group. Every thread calls it after the buffer's last reader has
// passed a __syncthreads; skip: the group is committed empty (kDecoderSkipWeights).
template <class Src>
__device__ void issue_tile(bool skip, char* buf, int nrows, int row_bytes, Src src) {
  const int chunks = row_bytes / 16, total = skip ? 0 : nrows * chunks;
  for (int i = int(threadIdx.x); i < total; i += kThreads) {
    const int j = i / chunks, c = i - j * chunks;
    cp_async16(buf + size_t(j) * row_bytes + c * 16, src(j) + c * 16);
  }
  cp_async_commit();
}

// This block's rows [r0, r0 + n) of a phase with `per` rows a block out of `total`.
__device__ __forceinline__ int block_rows(int per, int total, int& r0) {
  r0 = int(blockIdx.x) * per;
  return max(0, min(per, total - r0));
}

__device__ __forceinline__ const char* row_of(const void* w, int r, int cols) {
  return static_cast<const char*>(w) + size_t(r) * size_t(cols) * 2;  // bf16 / f16
}

// The issue_* functions read the layer's weight pointers into registers first: the table is in
// global memory, and each cp.async's "memory" clobber would otherwise make every 16-byte piece
// reload its row's pointer (a dependent load before each copy).
__device__ void issue_q(char* buf, const DecoderArgs& a, const DecoderLayerArgs& L) {
  int r0;
  const int n = block_rows(a.rows_q, a.q_rows + 2 * a.kv_dim, r0);
  const void *wq = L.wq, *wk = L.wk, *wv = L.wv;  // [wq; wk; wv] stacked by rows
  const int q_rows = a.q_rows, kv_dim = a.kv_dim, dim = a.dim;
  issue_tile(a.diag & kDecoderSkipWeights, buf, n, dim * 2, [=](int j) {
    const int r = r0 + j;
    if (r < q_rows) return row_of(wq, r, dim);
    if (r < q_rows + kv_dim) return row_of(wk, r - q_rows, dim);
    return row_of(wv, r - q_rows - kv_dim, dim);
  });
}
__device__ void issue_o(char* buf, const DecoderArgs& a, const DecoderLayerArgs& L) {
  int r0;
  const int n = block_rows(a.rows_o, a.dim, r0);
  const void* wo = L.wo;
  const int cols = a.q_rows;
  issue_tile(a.diag & kDecoderSkipWeights, buf, n, cols * 2,
             [=](int j) { return row_of(wo, r0 + j, cols); });
}
// Gate rows at tile rows [0, n), up rows at [rows_g, rows_g + n).
__device__ void issue_g(char* buf, const DecoderArgs& a, const DecoderLayerArgs& L) {
  int r0;
  const int n = block_rows(a.rows_g, a.ffn, r0), per = a.rows_g;
  const void *wg = L.wg, *wu = L.wu;
  const int dim = a.dim;
  issue_tile(a.diag & kDecoderSkipWeights, buf, n == 0 ? 0 : per + n, dim * 2, [=](int j) {
    return j < per ? row_of(wg, r0 + min(j, n - 1), dim) : row_of(wu, r0 + j - per, dim);
  });
}
__device__ void issue_d(char* buf, const DecoderArgs& a, const DecoderLayerArgs& L) {
  int r0;
  const int n = block_rows(a.rows_d, a.dim, r0);
  const void* wd = L.wd;
  const int cols = a.ffn;
  issue_tile(a.diag & kDecoderSkipWeights, buf, n, cols * 2,
             [=](int j) { return row_of(wd, r0 + j, cols); });
}

// The contract dot of xs (shared fp32) with one tile row, as the staged kernels run it: lane k
// FMAs elements k, k + 32, ... in increasing order, then the warp folds; valid in lane 0.
template <WType W>
__device__ __forceinline__ float tile_dot(const float* xs, const char* row, int cols, int lane) {
  float acc = 0.0f;
  for (int i = lane; i < cols; i += 32) acc = fmaf(xs[i], load_w<W>(row, i), acc);
  return warp_fold(acc);
}

// xs[0, n) = x[0, n), read past L1 (x was written by other blocks of this launch), then a sync.
__device__ __forceinline__ void stage_x(float* xs, const float* x, int n) {
  for (int i = int(threadIdx.x); i < n; i += kThreads) xs[i] = __ldcg(x + i);
  __syncthreads();
}

// Q: rmsnorm_qkv's staged kernel: xn = gain · (x · inv) in fp32 (its 256 threads' sum of
// squares), then q, k, v rows rounded once each, bias added in fp32.
template <WType W>
__device__ void phase_qkv(const DecoderArgs& a, const DecoderLayerArgs& L, const char* tile,
                          float* xs, double* red) {
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  stage_x(xs, a.sum, a.dim);
  const float inv = inv_rms_from(block_sum_squares(xs, a.dim, red, 32 * 8), a.dim, a.eps);
  for (int i = int(threadIdx.x); i < a.dim; i += kThreads) xs[i] = L.in_norm[i] * (xs[i] * inv);
  __syncthreads();
  int r0;
  const int n = block_rows(a.rows_q, a.q_rows + 2 * a.kv_dim, r0);
  for (int j = warp; j < n; j += kWarps) {
    const float d = tile_dot<W>(xs, tile + size_t(j) * a.dim * 2, a.dim, lane);
    if (lane != 0) continue;
    int r = r0 + j;
    float* out = a.q;
    const float* bias = L.bq;
    if (r >= a.q_rows) r -= a.q_rows, out = a.k, bias = L.bk;
    if (out == a.k && r >= a.kv_dim) r -= a.kv_dim, out = a.v, bias = L.bv;
    float v = d;
    if (bias) v += bias[r];
    out[r] = round_act(a.act, v);
  }
}

// R: qk_norm_rope_append_kernel's blocks as warps: q heads, k heads (rotated, then stored at
// row *pos) and v heads (stored).
__device__ void phase_rope(const DecoderArgs& a, const DecoderLayerArgs& L) {
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int64_t hd = a.head_dim, half = hd / 2, p = *a.pos;
  const float *cp = a.cos_tab + p * half, *sp = a.sin_tab + p * half;
  const int items = a.q_heads + 2 * a.kv_heads;
  for (int it = int(blockIdx.x) * kWarps + warp; it < items; it += int(gridDim.x) * kWarps) {
    if (it < a.q_heads) {
      norm_rope_head(a.q + it * hd, hd, L.q_norm, a.eps, cp, sp, a.act, lane);
      continue;
    }
    const bool is_k = it < a.q_heads + a.kv_heads;
    const int64_t head = is_k ? it - a.q_heads : it - a.q_heads - a.kv_heads, c0 = head * hd;
    const int64_t row = p * a.kv_dim + c0;
    if (is_k) {
      float* kh = a.k + head * hd;
      norm_rope_head(kh, hd, L.k_norm, a.eps, cp, sp, a.act, lane);
      __syncwarp();  // the head's rotated values, written by every lane, before they are stored
      for (int64_t i = lane; i < hd; i += 32) kv_store(L.kc, row + i, c0 + i, kh[i]);
    } else {
      const float* vh = a.v + head * hd;
      for (int64_t i = lane; i < hd; i += 32) kv_store(L.vc, row + i, c0 + i, __ldcg(vh + i));
    }
  }
}

// Keys [j0, j1) of split sp over the *pos + 1 cached positions, as flash_split_kernel splits them.
// attn_rope stores the new K and V row in the unit whose range holds *pos, the one whose split
// reads it back: both take the range from here.
__device__ __forceinline__ void split_keys(const DecoderArgs& a, int sp, int64_t& j0, int64_t& j1) {
  const int64_t n_ctx = int64_t(*a.pos) + 1, chunk = (n_ctx + a.splits - 1) / a.splits;
  j0 = sp * chunk, j1 = min(n_ctx, j0 + chunk);
}

// One (head h, split sp) of flash_split_kernel by a 4-warp unit; writes the split's work row.
// VPL = values a lane holds (head_dim <= 32 · VPL). Unit warp uw walks the same keys as the
// kernel's warp uw (j0 + uw, + 4, ...) with the same arithmetic (key_dot's FMA chain and fold,
// online_weights, online_value), but loads KB keys' K and V rows before their arithmetic: the
// per-op kernel's two dependent round trips a key become one a batch.
// T: the cache's format (kv_load_as), or INT8 for kv_load's runtime switch (kDecoderGenericKv).
template <int VPL, int KB, KvType T>
__device__ void attn_split(const DecoderArgs& a, const DecoderLayerArgs& L, int h, int sp, int unit,
                           int uw, float* us, const float* qs) {
  auto part = reinterpret_cast<float(*)[kMaxHeadDim + 2]>(us);
  const int lane = int(threadIdx.x) % 32;
  const int64_t hd = a.head_dim, kvh = h / (a.q_heads / a.kv_heads), ch = kvh * hd;
  int64_t j0, j1;
  split_keys(a, sp, j0, j1);
  const float* qh = a.q + h * hd;
  const void *kd = L.kc.data, *vd = L.vc.data;  // read once, not per element
  float qr[VPL], acc[VPL];
#pragma unroll
  for (int c = 0; c < VPL; ++c) {
    const int64_t d = lane + 32 * c;
    qr[c] = d < hd ? (qs ? qs[d] : __ldcg(qh + d)) : 0.0f;
    acc[c] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int64_t jb = j0 + uw; jb < j1; jb += KB * kSplitWarps) {
    float kr[KB][VPL], vr[KB][VPL];
#pragma unroll
    for (int b = 0; b < KB; ++b) {
      const int64_t off = (jb + b * kSplitWarps) * a.kv_dim + ch;
#pragma unroll
      for (int c = 0; c < VPL; ++c) {
        const int64_t d = lane + 32 * c;
        const bool live = jb + b * kSplitWarps < j1 && d < hd;
        if constexpr (T == KvType::INT8) {
          kr[b][c] = live ? kv_load(L.kc, off + d, ch + d) : 0.0f;
          vr[b][c] = live ? kv_load(L.vc, off + d, ch + d) : 0.0f;
        } else {
          kr[b][c] = live ? kv_load_as<T>(kd, off + d) : 0.0f;
          vr[b][c] = live ? kv_load_as<T>(vd, off + d) : 0.0f;
        }
      }
    }
#pragma unroll
    for (int b = 0; b < KB; ++b) {
      if (jb + b * kSplitWarps >= j1) break;
      float dot = 0.0f;  // key_dot's chain
#pragma unroll
      for (int c = 0; c < VPL; ++c)
        if (lane + 32 * c < hd) dot = fmaf(qr[c], kr[b][c], dot);
      const float sj = __shfl_sync(0xffffffffu, warp_fold(dot), 0) * a.scale;  // fp32
      float corr, p;
      online_weights(sj, m, l, corr, p);
#pragma unroll
      for (int c = 0; c < VPL; ++c)
        if (lane + 32 * c < hd) acc[c] = online_value(acc[c], corr, p, vr[b][c]);
    }
  }
#pragma unroll
  for (int c = 0; c < VPL; ++c)
    if (lane + 32 * c < hd) part[uw][2 + lane + 32 * c] = acc[c];
  if (lane == 0) part[uw][0] = m, part[uw][1] = l;
  unit_sync(unit);
  float* o = a.work + (int64_t(h) * a.splits + sp) * (hd + 2);
  for (int64_t d = uw * 32 + lane; d < hd + 2; d += kSplitWarps * 32) o[d] = split_merge(part, d);
  if ((a.diag & kDecoderTickets) && !(a.diag & kDecoderAcqRel)) __threadfence();  // the ticket
}

template <KvType T>
__device__ void attn_split_as(const DecoderArgs& a, const DecoderLayerArgs& L, int h, int sp,
                              int unit, int uw, float* us, const float* qs) {
  if (a.head_dim <= 32)
    attn_split<1, 4, T>(a, L, h, sp, unit, uw, us, qs);
  else if (a.head_dim <= 64)
    attn_split<2, 4, T>(a, L, h, sp, unit, uw, us, qs);
  else if (a.head_dim <= 128 && (a.diag & kDecoderKeyAtATime))
    attn_split<4, 1, T>(a, L, h, sp, unit, uw, us, qs);
  else if (a.head_dim <= 128)
    attn_split<4, 4, T>(a, L, h, sp, unit, uw, us, qs);
  else
    attn_split<8, 2, T>(a, L, h, sp, unit, uw, us, qs);
}

// qs: the q head in shared memory (attn_rope), else read from q (kDecoderRopePhase). The cache's
// format picks the loads once a split (decoder_stack passes F32, BF16 or F16 caches only).
__device__ void attn_split_any(const DecoderArgs& a, const DecoderLayerArgs& L, int h, int sp,
                               int unit, int uw, float* us, const float* qs) {
  if (a.diag & kDecoderGenericKv)
    attn_split_as<KvType::INT8>(a, L, h, sp, unit, uw, us, qs);
  else if (L.kc.type == KvType::BF16)
    attn_split_as<KvType::BF16>(a, L, h, sp, unit, uw, us, qs);
  else if (L.kc.type == KvType::F16)
    attn_split_as<KvType::F16>(a, L, h, sp, unit, uw, us, qs);
  else
    attn_split_as<KvType::F32>(a, L, h, sp, unit, uw, us, qs);
}

// Before a unit's split (without kDecoderRopePhase): its q head's norm + RoPE (norm_rope_head, as
// phase_rope runs it, on a copy in the unit's scratch qs) and, by the unit whose split holds the
// new position, the kv head's k (norm + RoPE) and v stored in the cache at *pos, which its split
// then reads back. The units of the group's other q heads store the same bits there.
__device__ void attn_rope(const DecoderArgs& a, const DecoderLayerArgs& L, int h, int sp, int unit,
                          int uw, float* qs) {
  const int lane = int(threadIdx.x) % 32;
  const int64_t hd = a.head_dim, half = hd / 2, p = *a.pos;
  const float *cp = a.cos_tab + p * half, *sn = a.sin_tab + p * half;
  int64_t j0, j1;
  split_keys(a, sp, j0, j1);
  const bool holds_pos = j0 <= p && p < j1;
  const int64_t c0 = h / (a.q_heads / a.kv_heads) * hd, row = p * a.kv_dim + c0;
  if (uw == 0) {
    for (int64_t i = lane; i < hd; i += 32) qs[i] = __ldcg(a.q + h * hd + i);
    __syncwarp();
    norm_rope_head(qs, hd, L.q_norm, a.eps, cp, sn, a.act, lane);
  } else if (uw == 1 && holds_pos) {
    float* ks = qs + kMaxHeadDim;
    for (int64_t i = lane; i < hd; i += 32) ks[i] = __ldcg(a.k + c0 + i);
    __syncwarp();
    norm_rope_head(ks, hd, L.k_norm, a.eps, cp, sn, a.act, lane);
    __syncwarp();
    for (int64_t i = lane; i < hd; i += 32) kv_store(L.kc, row + i, c0 + i, ks[i]);
  } else if (uw == 2 && holds_pos) {
    for (int64_t i = lane; i < hd; i += 32) kv_store(L.vc, row + i, c0 + i, __ldcg(a.v + c0 + i));
  }
  unit_sync(unit);  // qs, and the new K and V rows, before the split reads them
}

// This lane's values of split k's accumulator (0 past the end), read past L1: other blocks wrote
// them during this phase.
__device__ __forceinline__ void load_split_l2(float* v, const float* w, int k, int splits,
                                              int64_t hd, int lane) {
#pragma unroll
  for (int c = 0; c < kMaxHeadDim / 32; ++c) {
    const int64_t d = lane + 32 * c;
    v[c] = k < splits && d < hd ? __ldcg(w + k * (hd + 2) + 2 + d) : 0.0f;
  }
}

// flash_reduce_kernel for head h by a 4-warp unit: unit warp uw forms the partials of the reduce
// kernel's warps uw and uw + 4 in turn (the same splits in the same order), then the 8 partials
// are added in warp order and rounded once.
__device__ void attn_reduce(const DecoderArgs& a, int h, int unit, int uw, float* us) {
  auto part = reinterpret_cast<float(*)[kMaxHeadDim]>(us);
  float* e_sh = us + kReduceWarps * kMaxHeadDim;  // [splits] e_k, then [1] 1 / l
  const int lane = int(threadIdx.x) % 32, splits = a.splits;
  const int64_t hd = a.head_dim, stride = hd + 2;
  const float* w = a.work + int64_t(h) * splits * stride;
  if (uw == 0) {
    float m = -INFINITY;
    for (int k = lane; k < splits; k += 32) m = fmaxf(m, __ldcg(w + k * stride));
    const float M = warp_max(m);
    float l = 0.0f;
    for (int k = lane; k < splits; k += 32) {
      const float mk = __ldcg(w + k * stride);
      const float e = mk != -INFINITY ? expf(mk - M) : 0.0f;
      e_sh[k] = e;
      l += __ldcg(w + k * stride + 1) * e;
    }
    l = warp_fold(l);
    if (lane == 0) e_sh[splits] = 1.0f / l;
  }
  unit_sync(unit);
  for (int vw = uw; vw < kReduceWarps; vw += kSplitWarps) {
    float v0[kMaxHeadDim / 32], v1[kMaxHeadDim / 32];
    load_split_l2(v0, w, vw, splits, hd, lane);
    load_split_l2(v1, w, vw + kReduceWarps, splits, hd, lane);
    float acc[kMaxHeadDim / 32] = {};
    if (vw < splits) add_weighted(acc, v0, e_sh[vw], hd, lane);
    if (vw + kReduceWarps < splits) add_weighted(acc, v1, e_sh[vw + kReduceWarps], hd, lane);
    for (int k = vw + 2 * kReduceWarps; k < splits; k += kReduceWarps) {
      load_split_l2(v0, w, k, splits, hd, lane);
      add_weighted(acc, v0, e_sh[k], hd, lane);
    }
#pragma unroll
    for (int c = 0; c < kMaxHeadDim / 32; ++c)
      if (lane + 32 * c < hd) part[vw][lane + 32 * c] = acc[c];
  }
  unit_sync(unit);
  const float inv_l = e_sh[splits];
  for (int64_t d = uw * 32 + lane; d < hd; d += kSplitWarps * 32) {
    float s = part[0][d];
    for (int k = 1; k < kReduceWarps; ++k) s += part[k][d];
    a.attn[h * hd + d] = round_act(a.act, s * inv_l);
  }
}

// A: the units walk (head, split) items; the unit that takes a head's last ticket (one per split,
// an acq_rel atomic; reset for the next layer) reduces that head. Items go to blocks in turn, so
// with fewer items than units each takes its own SM (kDecoderPackAttn: a block's units take
// consecutive items, the schedule first measured).
__device__ void phase_attn(const DecoderArgs& a, const DecoderLayerArgs& L, float* unit_smem,
                           int layer) {
  __shared__ int last[kUnits];
  const bool sc = !(a.diag & kDecoderAcqRel), pack = a.diag & kDecoderPackAttn;
  const int warp = int(threadIdx.x) / 32, unit = warp / kSplitWarps, uw = warp % kSplitWarps;
  float* us = unit_smem + unit * kUnitFloats;
  const int items = a.q_heads * a.splits;
  const int first =
      pack ? int(blockIdx.x) * kUnits + unit : unit * int(gridDim.x) + int(blockIdx.x);
  for (int it = first; it < items; it += int(gridDim.x) * kUnits) {
    const int h = it / a.splits;
    float* qs = nullptr;
    if (!(a.diag & kDecoderRopePhase)) {
      qs = us + kSplitWarps * (kMaxHeadDim + 2);  // after the split's part
      attn_rope(a, L, h, it % a.splits, unit, uw, qs);
    }
    attn_split_any(a, L, h, it % a.splits, unit, uw, us, qs);
    unit_sync(unit);  // the unit's work row is written
    if (it == first) mark(a, layer, 4);
    if (!(a.diag & kDecoderTickets)) continue;  // the grid barrier publishes the rows
    if (uw == 0 && threadIdx.x % 32 == 0) {
      // Releases this unit's row, acquires the rows of the units that took tickets before it.
      const unsigned before = sc ? (__threadfence(), atomicAdd(a.head_tickets + h, 1u))
                                 : atom_add_acq_rel(a.head_tickets + h, 1u);
      last[unit] = before == unsigned(a.splits - 1);
    }
    unit_sync(unit);
    if (last[unit]) {
      if (sc) __threadfence();
      attn_reduce(a, h, unit, uw, us);
      if (uw == 0 && threadIdx.x % 32 == 0) atomicExch(a.head_tickets + h, 0u);
    }
    unit_sync(unit);  // before the unit's scratch is reused
  }
}

// O's input (without kDecoderTickets): every block reduces every head's splits itself
// into xs, a warp a head, with flash_reduce_kernel's arithmetic in its order: e_k and l as its
// warp 0 forms them (lane k holds splits k and k + 32), the partial of reduce warp r = the sum over
// splits k = r, r + kReduceWarps, ... in turn, the partials added in warp order, rounded once.
// The first splits' values are loaded with the (m, l) pairs, in one round trip.
// Block 0 also stores attn.
template <int VPL>
__device__ void reduce_head(const DecoderArgs& a, int h, float* xs, int lane) {
  const int splits = a.splits;
  const int64_t hd = a.head_dim, stride = hd + 2;
  const float* w = a.work + int64_t(h) * splits * stride;
  const float m0 = lane < splits ? __ldcg(w + lane * stride) : -INFINITY;
  const float m1 = lane + 32 < splits ? __ldcg(w + (lane + 32) * stride) : -INFINITY;
  const float l0 = lane < splits ? __ldcg(w + lane * stride + 1) : 0.0f;
  const float l1 = lane + 32 < splits ? __ldcg(w + (lane + 32) * stride + 1) : 0.0f;
  constexpr int P = VPL <= 4 ? kReduceWarps : 4;  // splits preloaded: 32 registers at most
  float v[P][VPL];
#pragma unroll
  for (int r = 0; r < P; ++r)
#pragma unroll
    for (int c = 0; c < VPL; ++c) {
      const int64_t d = lane + 32 * c;
      v[r][c] = r < splits && d < hd ? __ldcg(w + r * stride + 2 + d) : 0.0f;
    }
  const float M = warp_max(fmaxf(m0, m1));
  const float e0 = m0 != -INFINITY ? expf(m0 - M) : 0.0f;
  const float e1 = m1 != -INFINITY ? expf(m1 - M) : 0.0f;
  float l = 0.0f;
  if (lane < splits) l += l0 * e0;
  if (lane + 32 < splits) l += l1 * e1;
  l = warp_fold(l);
  const float inv_l = 1.0f / __shfl_sync(0xffffffffu, l, 0);
  float s[VPL];
#pragma unroll
  for (int r = 0; r < kReduceWarps; ++r) {
    float acc[VPL] = {};
    for (int k = r; k < splits; k += kReduceWarps) {
      const float e = __shfl_sync(0xffffffffu, k < 32 ? e0 : e1, k % 32);
#pragma unroll
      for (int c = 0; c < VPL; ++c) {
        const int64_t d = lane + 32 * c;
        const float vk = k == r && r < P ? v[r % P][c]
                         : d < hd        ? __ldcg(w + k * stride + 2 + d)
                                         : 0.0f;
        if (d < hd) acc[c] += vk * e;
      }
    }
#pragma unroll
    for (int c = 0; c < VPL; ++c) s[c] = r == 0 ? acc[c] : s[c] + acc[c];
  }
#pragma unroll
  for (int c = 0; c < VPL; ++c) {
    const int64_t d = lane + 32 * c;
    if (d >= hd) continue;
    const float o = round_act(a.act, s[c] * inv_l);
    xs[h * hd + d] = o;
    if (blockIdx.x == 0) a.attn[h * hd + d] = o;
  }
}

__device__ void reduce_heads(const DecoderArgs& a, float* xs) {
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  for (int h = warp; h < a.q_heads; h += kWarps) {
    if (a.head_dim <= 32)
      reduce_head<1>(a, h, xs, lane);
    else if (a.head_dim <= 64)
      reduce_head<2>(a, h, xs, lane);
    else if (a.head_dim <= 128)
      reduce_head<4>(a, h, xs, lane);
    else
      reduce_head<8>(a, h, xs, lane);
  }
  __syncthreads();
}

// O and D: out = round(dot) over this block's rows of a [dim, cols] weight with x [cols]; with
// `add`, gemv_add_residual's staged epilogue: s = h + out (fp32); sum = s; h = round(s). O:
// o_proj on attn; D: down_proj on mlp_act, the next layer's add, or plain for the last layer (as
// linear: the final norm adds it).
// x == nullptr: O's input is formed from the attention splits (reduce_heads).
template <WType W>
__device__ void phase_proj(const DecoderArgs& a, const char* tile, float* xs, const float* x,
                           int cols, float* out, bool add) {
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  if (x)
    stage_x(xs, x, cols);
  else
    reduce_heads(a, xs);
  int r0;
  const int n = block_rows(a.rows_o, a.dim, r0);
  for (int j = warp; j < n; j += kWarps) {
    const float d = tile_dot<W>(xs, tile + size_t(j) * cols * 2, cols, lane);
    if (lane != 0) continue;
    const int r = r0 + j;
    const float v = round_act(a.act, d);
    out[r] = v;
    if (!add) continue;
    const float s = __ldcg(a.hidden + r) + v;
    a.sum[r] = s;
    a.hidden[r] = round_act(a.act, s);
  }
}

// G: rmsnorm_gate_up_silu's staged kernel: normed = round(gain · (s · inv)) with add_rmsnorm's
// sum of squares (norm_threads(dim) threads), block 0 storing it; then round(silu(g) · u).
template <WType W>
__device__ void phase_g(const DecoderArgs& a, const DecoderLayerArgs& L, const char* tile,
                        float* xs, double* red) {
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  stage_x(xs, a.sum, a.dim);
  const int active = norm_threads(a.dim);
  const float inv = inv_rms_from(block_sum_squares(xs, a.dim, red, active), a.dim, a.eps);
  for (int i = int(threadIdx.x); i < a.dim; i += kThreads) {
    xs[i] = round_act(a.act, L.post_norm[i] * (xs[i] * inv));
    if (blockIdx.x == 0) a.normed[i] = xs[i];
  }
  __syncthreads();
  int r0;
  const int n = block_rows(a.rows_g, a.ffn, r0);
  const size_t rb = size_t(a.dim) * 2;
  for (int j = warp; j < n; j += kWarps) {
    const char *g = tile + size_t(j) * rb, *u = tile + size_t(a.rows_g + j) * rb;
    float ag = 0.0f, au = 0.0f;
    for (int i = lane; i < a.dim; i += 32) {
      const float xv = xs[i];
      ag = fmaf(xv, load_w<W>(g, i), ag);
      au = fmaf(xv, load_w<W>(u, i), au);
    }
    const float dg = warp_fold(ag), du = warp_fold(au);
    if (lane != 0) continue;
    // CPU: g / (1 + std::exp(-g)) * up; exp in double then narrowed tracks glibc's expf.
    const float e = float(exp(-double(dg)));
    a.mlp_act[r0 + j] = round_act(a.act, dg / (1.0f + e) * du);
  }
}

template <WType W>
__global__ void __launch_bounds__(kThreads, 1) decoder_kernel(DecoderArgs a) {
  extern __shared__ float4 smem4[];
  __shared__ double red[32];
  char* buf0 = reinterpret_cast<char*>(smem4);
  char* buf1 = buf0 + a.buf1_offset;
  float* xs = reinterpret_cast<float*>(buf0 + a.xs_offset);
  float* us = reinterpret_cast<float*>(buf0 + a.unit_offset);
  unsigned target = 0;
  const bool sc = !(a.diag & kDecoderAcqRel), gemv = !(a.diag & kDecoderSkipGemv);
  issue_q(buf0, a, a.layers[0]);
  issue_o(buf1, a, a.layers[0]);
  for (int l = 0; l < a.n_layers; ++l) {
    const DecoderLayerArgs& L = a.layers[l];
    const bool last = l + 1 == a.n_layers;
    mark(a, l, 0);
    tile_ready();
    mark(a, l, 1);
    if (gemv) phase_qkv<W>(a, L, buf0, xs, red);
    __syncthreads();  // buffer 0 is free: the gate/up tile streams in during R and A
    issue_g(buf0, a, L);
    grid_barrier(a.barrier, target, sc);
    mark(a, l, 2);
    if ((a.diag & kDecoderRopePhase) && !(a.diag & kDecoderSkipRope)) {
      phase_rope(a, L);
      grid_barrier(a.barrier, target, sc);
    }
    mark(a, l, 3);
    if (!(a.diag & kDecoderSkipAttn)) phase_attn(a, L, us, l);
    mark(a, l, 5);
    grid_barrier(a.barrier, target, sc);
    mark(a, l, 6);
    tile_ready();
    if (gemv)
      phase_proj<W>(a, buf1, xs, a.diag & kDecoderTickets ? a.attn : nullptr, a.q_rows, a.attn_out,
                    true);
    __syncthreads();
    issue_d(buf1, a, L);
    grid_barrier(a.barrier, target, sc);
    mark(a, l, 7);
    tile_ready();
    mark(a, l, 8);
    if (gemv) phase_g<W>(a, L, buf0, xs, red);
    __syncthreads();
    if (!last)
      issue_q(buf0, a, a.layers[l + 1]);
    else
      cp_async_commit();
    grid_barrier(a.barrier, target, sc);
    mark(a, l, 9);
    tile_ready();
    if (gemv) phase_proj<W>(a, buf1, xs, a.mlp_act, a.ffn, a.mlp_out, !last);
    if (last) break;
    __syncthreads();
    issue_o(buf1, a, a.layers[l + 1]);
    grid_barrier(a.barrier, target, sc);
  }
  cp_async_wait<0>();
  __syncthreads();
  if (a.trace && blockIdx.x == 0 && threadIdx.x == 0)
    a.trace[kDecoderMarks * a.n_layers] = clock64();
}

int ceil_div(int a, int b) {
  return (a + b - 1) / b;
}

}  // namespace

int decoder_plan(DecoderArgs& a, WType w, int blocks, size_t max_smem) {
  const bool shape_ok = a.n_layers > 0 && a.dim % 8 == 0 && a.q_rows % 8 == 0 && a.ffn % 8 == 0 &&
                        a.head_dim % 2 == 0 && a.head_dim <= kMaxHeadDim && a.kv_heads > 0 &&
                        a.q_heads % a.kv_heads == 0 && a.q_rows == a.q_heads * a.head_dim &&
                        a.kv_dim == a.kv_heads * a.head_dim && a.splits >= 1 &&
                        a.splits <= kMaxSplits && blocks > 0;
  if (w == WType::F32 || !shape_ok) return int(cudaErrorInvalidValue);
  a.blocks = blocks;
  a.rows_q = ceil_div(a.q_rows + 2 * a.kv_dim, blocks);
  a.rows_o = ceil_div(a.dim, blocks);
  a.rows_g = ceil_div(a.ffn, blocks);
  a.rows_d = a.rows_o;
  const size_t b0 = std::max(size_t(a.rows_q) * a.dim * 2, size_t(2 * a.rows_g) * a.dim * 2);
  const size_t b1 = std::max(size_t(a.rows_o) * a.q_rows * 2, size_t(a.rows_d) * a.ffn * 2);
  const size_t xs = size_t(std::max({a.dim, a.q_rows, a.ffn})) * 4;
  a.buf1_offset = (b0 + 15) / 16 * 16;
  a.xs_offset = a.buf1_offset + (b1 + 15) / 16 * 16;
  a.unit_offset = a.xs_offset + (xs + 15) / 16 * 16;
  a.smem_bytes = a.unit_offset + size_t(kUnits) * kUnitFloats * 4;
  return a.smem_bytes <= max_smem ? 0 : int(cudaErrorInvalidValue);
}

int decoder_blocks(int* blocks, size_t* max_smem) {
  int dev = 0, sms = 0, optin = 0, coop = 0;
  if (const int e = int(cudaGetDevice(&dev))) return e;
  if (const int e = int(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev)))
    return e;
  if (const int e =
          int(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev)))
    return e;
  if (const int e = int(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev))) return e;
  if (!coop) return int(cudaErrorNotSupported);
  // Static shared memory (red, last) and a margin come off the opt-in maximum.
  *blocks = sms, *max_smem = size_t(optin) - 1024;
  return 0;
}

template <WType W>
int decoder_launch(const DecoderArgs& a, Stream st) {
  auto* kernel = decoder_kernel<W>;
  if (const int e = int(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             int(a.smem_bytes))))
    return e;
  int per_sm = 0;
  if (const int e = int(
          cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, a.smem_bytes)))
    return e;
  if (per_sm < 1) return int(cudaErrorCooperativeLaunchTooLarge);
  // The barrier counter starts at 0 for each launch (a memset node in a recorded step).
  if (const int e = int(cudaMemsetAsync(a.barrier, 0, sizeof(unsigned), st))) return e;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(unsigned(a.blocks)), cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = a.smem_bytes, cfg.stream = st;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeCooperative;  // every block resident: the barriers need it
  attr[0].val.cooperative = 1;
  cfg.attrs = attr, cfg.numAttrs = 1;
  if (const int e = int(cudaLaunchKernelEx(&cfg, kernel, a))) return e;
  return launch_status();
}

int decoder_layers(const DecoderArgs& a, WType w, Stream stream) {
  if (w == WType::BF16) return decoder_launch<WType::BF16>(a, stream);
  if (w == WType::F16) return decoder_launch<WType::F16>(a, stream);
  return int(cudaErrorInvalidValue);
}

}  // namespace fusecheck::cuda
