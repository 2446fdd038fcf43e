// Decode GEMV and the fused projections (rmsnorm_qkv, gate_up_silu; gemv_add_residual and
// rmsnorm_gate_up_silu, which take add_rmsnorm's add and norm into the o_proj and gate_up
// kernels), all on the CPU's 32-lane dot-product contract, so they are bit-identical to
// cpu::linear / the CPU's fused kernels.
//
// Mapping: a row's 32 contract lanes are owned by a group of TPR = 32 / EPL consecutive threads,
// EPL = elements per 16-byte load (8 for bf16/f16, 4 for fp32). In every 32-element block of the
// row, thread g's 16-byte piece holds exactly lanes g·EPL .. g·EPL+EPL-1, so one 16-byte load per
// block feeds the thread's own EPL accumulators, in increasing i as the contract wants. The fold
// (lane k += lane k + w, w = 16 .. 1) is a shuffle within the group while w >= EPL, then in
// registers. Each weight is read once; 32 / TPR rows per warp.
#include <cstdio>

#include "kernels/cuda/common.cuh"

namespace fusecheck::cuda {
namespace {

constexpr int kThreads = 64;  // per block: 16 bf16 rows, so even a 1024-row matrix fills 64 SMs
// Load schedules (GemvVariant in cuda_ops.h): U = 32-element blocks whose weight pieces are
// loaded before their FMAs, 16 · U bytes in flight per thread.

template <WType W>
struct Cfg {
  static constexpr int kEpl = W == WType::F32 ? 4 : 8;  // elements per 16-byte load
  static constexpr int kTpr = 32 / kEpl;                // threads per row
  static constexpr int kRowsPerBlock = kThreads / kTpr;
};

// Widens the EPL elements of one 16-byte weight piece.
template <WType W>
__device__ __forceinline__ void widen(const uint4& v, float* f) {
  if constexpr (W == WType::F32) {
    f[0] = __uint_as_float(v.x), f[1] = __uint_as_float(v.y);
    f[2] = __uint_as_float(v.z), f[3] = __uint_as_float(v.w);
  } else {
    const uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if constexpr (W == WType::BF16) {
        f[2 * j] = __uint_as_float(u[j] << 16);
        f[2 * j + 1] = __uint_as_float(u[j] & 0xffff0000u);
      } else {
        f[2 * j] = __half2float(__ushort_as_half(uint16_t(u[j] & 0xffffu)));
        f[2 * j + 1] = __half2float(__ushort_as_half(uint16_t(u[j] >> 16)));
      }
    }
  }
}

// E consecutive fp32 values of x (16-byte aligned) into registers.
template <int E>
__device__ __forceinline__ void load_x(const float* x, float* xf) {
  const float4* xv = reinterpret_cast<const float4*>(x);
#pragma unroll
  for (int q = 0; q < E / 4; ++q) {
    const float4 t = xv[q];
    xf[4 * q] = t.x, xf[4 * q + 1] = t.y, xf[4 * q + 2] = t.z, xf[4 * q + 3] = t.w;
  }
}

// The contract's fold of a row's 32 lanes held E per thread by TPR threads: lanes k and k + w are
// in threads g and g + w / E while w >= E, then in registers. The result is valid in g == 0.
template <int E, int TPR>
__device__ __forceinline__ float fold(float* acc) {
#pragma unroll
  for (int w = 16; w >= 1; w /= 2) {
    if (w >= E) {
#pragma unroll
      for (int e = 0; e < E; ++e) acc[e] += __shfl_down_sync(0xffffffffu, acc[e], w / E, TPR);
    } else {
#pragma unroll
      for (int e = 0; e < w; ++e) acc[e] += acc[e + w];
    }
  }
  return acc[0];
}

// The contract dot of x[0, cols) with one weight row, for thread g of the row's group; the result
// is valid in g == 0. `vec`: cols % 8 == 0 and x, w 16-byte aligned (else element loads, same
// arithmetic).
// x's pieces are loaded together with the weights': loading them after the weights arrived (fewer
// registers held) exposed x's L1/L2 latency and measured 2x slower on the H200.
template <WType W, int U>
__device__ float row_dot(const void* wrow, const float* x, int64_t cols, int g, bool vec) {
  constexpr int E = Cfg<W>::kEpl, TPR = Cfg<W>::kTpr;
  float acc[E];
#pragma unroll
  for (int e = 0; e < E; ++e) acc[e] = 0.0f;
  const int64_t nb = (cols + 31) / 32;
  if (vec) {
    const uint4* wv = static_cast<const uint4*>(wrow);  // 16-byte pieces: 4 (bf16) or 8 per block
    for (int64_t b0 = 0; b0 < nb; b0 += U) {
      uint4 wr[U];
      float xr[U][E];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t i0 = (b0 + u) * 32 + g * E;
        if (b0 + u < nb && i0 < cols) {
          wr[u] = __ldg(wv + i0 / E);
          load_x<E>(x + i0, xr[u]);
        }
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t i0 = (b0 + u) * 32 + g * E;
        if (b0 + u < nb && i0 < cols) {
          float wf[E];
          widen<W>(wr[u], wf);
          const float* xf = xr[u];
#pragma unroll
          for (int e = 0; e < E; ++e) acc[e] = fmaf(xf[e], wf[e], acc[e]);
        }
      }
    }
  } else {
    for (int64_t b = 0; b < nb; ++b)
#pragma unroll
      for (int e = 0; e < E; ++e) {
        const int64_t i = b * 32 + g * E + e;
        if (i < cols) acc[e] = fmaf(x[i], load_w<W>(wrow, i), acc[e]);
      }
  }
  return fold<E, TPR>(acc);
}

template <WType W>
__device__ __forceinline__ const void* row_ptr(const void* base, int64_t r, int64_t cols) {
  constexpr int64_t kBytes = W == WType::F32 ? 4 : 2;
  return static_cast<const char*>(base) + r * cols * kBytes;
}

// out[t, r]; grid (row blocks, T).
template <WType W, int U>
__global__ void __launch_bounds__(kThreads)
    gemv_kernel(float* out, const float* x, const void* w, int64_t rows, int64_t cols,
                const float* bias, Act act, bool vec) {
  pdl_start();
  constexpr int TPR = Cfg<W>::kTpr;
  const int64_t r = int64_t(blockIdx.x) * Cfg<W>::kRowsPerBlock + threadIdx.x / TPR;
  const int g = threadIdx.x % TPR;
  const int64_t t = blockIdx.y;
  // Rows past the end still run the shuffles (with row 0) so every lane of the warp takes part.
  const int64_t rr = r < rows ? r : 0;
  float s = row_dot<W, U>(row_ptr<W>(w, rr, cols), x + t * cols, cols, g, vec);
  if (g == 0 && r < rows) {
    if (bias) s += bias[r];
    out[t * rows + r] = round_act(act, s);
  }
}

// Up to three projections of one normalised input (rmsnorm_qkv): segment by row.
struct Seg {
  const void* w = nullptr;
  const float* bias = nullptr;
  float* out = nullptr;
  int64_t rows = 0;
};
struct Segs {
  Seg s[3];
};

// Stages xn = gain · (x · inv_rms(x)) for token blockIdx.y in shared memory, then the rows of the
// three segments. Dynamic shared memory: cols floats.
template <WType W, int U>
__global__ void __launch_bounds__(kThreads)
    rmsnorm_qkv_kernel(Segs segs, const float* x, const float* gain, float eps, int64_t cols,
                       Act act, bool vec) {
  pdl_start();
  extern __shared__ float4 smem4[];
  float* xn = reinterpret_cast<float*>(smem4);
  __shared__ double red[32];
  constexpr int TPR = Cfg<W>::kTpr;
  const int64_t t = blockIdx.y;
  const float* xt = x + t * cols;
  const float inv = inv_rms_from(block_sum_squares(xt, cols, red), cols, eps);
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) xn[i] = gain[i] * (xt[i] * inv);
  __syncthreads();
  int64_t r = int64_t(blockIdx.x) * Cfg<W>::kRowsPerBlock + threadIdx.x / TPR;
  const int g = threadIdx.x % TPR;
  // Segment selection by constant indices (a run-time index would put segs in local memory).
  Seg sg = segs.s[0];
  if (r >= sg.rows) r -= sg.rows, sg = segs.s[1];
  if (r >= sg.rows) r -= sg.rows, sg = segs.s[2];
  const bool live = r < sg.rows;
  if (!live) sg = segs.s[0];
  float s = row_dot<W, U>(row_ptr<W>(sg.w, live ? r : 0, cols), xn, cols, g, vec);
  if (g == 0 && live) {
    if (sg.bias) s += sg.bias[r];
    sg.out[t * sg.rows + r] = round_act(act, s);
  }
}

// out[t, r] = round(silu(g) · u), g and u the fp32 dots with rows r of wg and wu.
template <WType W, int U>
__global__ void __launch_bounds__(kThreads)
    gate_up_silu_kernel(float* out, const float* x, const void* wg, const void* wu, int64_t rows,
                        int64_t cols, Act act, bool vec) {
  pdl_start();
  constexpr int TPR = Cfg<W>::kTpr;
  const int64_t r = int64_t(blockIdx.x) * Cfg<W>::kRowsPerBlock + threadIdx.x / TPR;
  const int g = threadIdx.x % TPR;
  const int64_t t = blockIdx.y, rr = r < rows ? r : 0;
  const float gs = row_dot<W, U>(row_ptr<W>(wg, rr, cols), x + t * cols, cols, g, vec);
  const float us = row_dot<W, U>(row_ptr<W>(wu, rr, cols), x + t * cols, cols, g, vec);
  if (g == 0 && r < rows) {
    // CPU: g / (1 + std::exp(-g)) * up; exp in double then narrowed tracks glibc's expf.
    const float e = float(exp(-double(gs)));
    out[t * rows + r] = round_act(act, gs / (1.0f + e) * us);
  }
}

// ---- Staged kernels: a block's whole weight tile in flight at once (bf16 / f16, vec only) ----
// The u8/u16 schedules keep 16 · U bytes in flight per thread, refilled after each batch's FMAs:
// a 1024-row matrix has 4096 threads, so a [1024, 3072] weight takes 6 sequential HBM round
// trips. Here each block of R = 8 rows (8 warps) first issues cp.async for every 16-byte piece
// of its tile [R, cols] (and of the gain), in kStages groups along K; only then does it wait for
// the previous kernel (pdl_wait: the weights depend on no kernel, so under launch_pdl the tile
// streams in while the previous kernel still runs), stages x in shared memory as fp32, and runs
// the contract out of shared memory, group by group as it lands: lane k of a row's warp FMAs
// elements k, k + 32, ... in increasing i, then the warp folds (lane k += lane k + w, w = 16..1).
constexpr int kStagedRows = 8;  // rows per block: 1024 rows are 128 blocks on the H200's 132 SMs
constexpr int kStages = 4;      // K quarters, one cp.async group each
constexpr size_t kStagedMaxSmem = 200 * 1024;

// kResidual: kPlain with add_rmsnorm's residual add in the epilogue (gemv_add_residual);
// kNormGateUp: kGateUp normalising x first as add_rmsnorm does (rmsnorm_gate_up_silu).
enum class Kind { kPlain, kQkv, kGateUp, kResidual, kNormGateUp };
__host__ __device__ constexpr bool gate_up_kind(Kind k) {
  return k == Kind::kGateUp || k == Kind::kNormGateUp;
}
__host__ __device__ constexpr bool norm_kind(Kind k) {
  return k == Kind::kQkv || k == Kind::kNormGateUp;
}

struct Staged {
  Segs segs;           // plain: s[0]; qkv: s[0..2] stacked by rows; gate_up: s[0] gate, s[1] up
  int64_t rows = 0;    // output rows in all (qkv: the three segments' sum)
  int64_t cols = 0;    // % 8 == 0
  int64_t stride = 0;  // shared bytes per tile row (16-byte multiple)
  const float* x = nullptr;     // [T, cols], 16-byte aligned (norm_gate_up: the fp32 sum s)
  const float* gain = nullptr;  // qkv, norm_gate_up: [cols] RMSNorm gain, 16-byte aligned
  float eps = 0.0f;
  Act act = Act::F32;
  float* h = nullptr;       // residual: [T, rows] the residual stream, read and rounded in place
  float* sum = nullptr;     // residual: [T, rows] receives the fp32 s = h + out
  float* normed = nullptr;  // norm_gate_up: [T, cols] receives the rounded normed row (block 0)
};

// Waits until groups 0 .. s (of kStages) have landed.
__device__ __forceinline__ void wait_stage(int s) {
  static_assert(kStages == 4);
  if (s == 0)
    cp_async_wait<3>();
  else if (s == 1)
    cp_async_wait<2>();
  else if (s == 2)
    cp_async_wait<1>();
  else
    cp_async_wait<0>();
}

// Matrix m's segment holding global row r (r becomes the segment's own row).
template <Kind K>
__device__ __forceinline__ Seg seg_of(const Segs& segs, int m, int64_t& r) {
  if constexpr (gate_up_kind(K)) {
    return m == 0 ? segs.s[0] : segs.s[1];
  } else if constexpr (K == Kind::kQkv) {
    Seg sg = segs.s[0];
    if (r >= sg.rows) r -= sg.rows, sg = segs.s[1];
    if (r >= sg.rows) r -= sg.rows, sg = segs.s[2];
    return sg;
  } else {
    return segs.s[0];
  }
}

// src (global) → dst (shared), n4 16-byte pieces, every load issued before the first store.
__device__ __forceinline__ void stage_f32(float* dst, const float* src, int64_t n4) {
  const float4* s4 = reinterpret_cast<const float4*>(src);
  float4* d4 = reinterpret_cast<float4*>(dst);
  constexpr int B = 16;
  for (int64_t base = threadIdx.x; base < n4; base += B * blockDim.x) {
    float4 v[B];
#pragma unroll
    for (int u = 0; u < B; ++u)
      if (base + u * blockDim.x < n4) v[u] = s4[base + u * blockDim.x];
#pragma unroll
    for (int u = 0; u < B; ++u)
      if (base + u * blockDim.x < n4) d4[base + u * blockDim.x] = v[u];
  }
}

// The staged kernels' normalisation of the row in xs (qkv, norm_gate_up), in place, once the gain
// gs has landed (cp.async group 0). qkv: xn = gain · (x · inv) stays fp32, the sum of squares
// over the whole block (rmsnorm_qkv's order). norm_gate_up: add_rmsnorm's normed, rounded, with
// add_rmsnorm's sum of squares (its block size's threads and order: norm_threads), so the same
// bits as add_rmsnorm_kernel; block 0 stores it to normed (row t, [cols]).
template <Kind K>
__device__ __forceinline__ void stage_norm(float* xs, const float* gs, const Staged& a,
                                           float* normed) {
  __shared__ double red[32];
  const int cols = int(a.cols), tid = int(threadIdx.x), nthr = int(blockDim.x);
  const int active = K == Kind::kQkv ? nthr : norm_threads(a.cols);
  const float inv = inv_rms_from(block_sum_squares(xs, a.cols, red, active), a.cols, a.eps);
  wait_stage(0);  // the gain is in group 0
  __syncthreads();
  for (int i = tid; i < cols; i += nthr) {
    if constexpr (K == Kind::kQkv) {
      xs[i] = gs[i] * (xs[i] * inv);
    } else {
      xs[i] = round_act(a.act, gs[i] * (xs[i] * inv));
      if (normed) normed[i] = xs[i];
    }
  }
}

// Shared memory: xs [cols] fp32 | gs [cols] fp32 (qkv, norm_gate_up) | tile [M · R rows, stride
// bytes]. grid (ceil(rows / R), T), block 32 · R threads: warp w owns tile row w (and w + R),
// lane k is contract lane k, so the fold is warp_fold's. Index math is 32-bit (cols < 2^26
// here): a 64-bit division per piece made the loader the slowest part.
template <WType W, Kind K>
__global__ void __launch_bounds__(32 * kStagedRows) staged_kernel(Staged a) {
  constexpr int R = kStagedRows, M = gate_up_kind(K) ? 2 : 1;
  extern __shared__ float4 smem4[];
  const int cols = int(a.cols), stride = int(a.stride), nthr = int(blockDim.x);
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32;
  float* xs = reinterpret_cast<float*>(smem4);
  float* gs = xs + cols;
  char* tile = reinterpret_cast<char*>(gs + (norm_kind(K) ? cols : 0));
  const int64_t r0 = int64_t(blockIdx.x) * R, t = blockIdx.y;
  const int nchunk = cols / 8, nb = (cols + 31) / 32;
  pdl_trigger();  // the next kernel may start its own weight loads while this one runs
  for (int s = 0; s < kStages; ++s) {
    if constexpr (norm_kind(K))
      if (s == 0)
        for (int c = tid; c < cols / 4; c += nthr) cp_async16(gs + 4 * c, a.gain + 4 * c);
    const int c0 = min(nchunk, s * nb / kStages * 4), c1 = min(nchunk, (s + 1) * nb / kStages * 4);
    for (int j = warp; j < M * R; j += R) {  // warp w issues tile rows w, w + R
      int64_t r = r0 + j % R;
      const Seg sg = seg_of<K>(a.segs, j / R, r);
      if (r >= sg.rows) continue;
      const char* src = static_cast<const char*>(row_ptr<W>(sg.w, r, a.cols));
      for (int c = c0 + lane; c < c1; c += 32) cp_async16(tile + j * stride + c * 16, src + c * 16);
    }
    cp_async_commit();
  }
  pdl_wait();
  stage_f32(xs, a.x + t * a.cols, a.cols / 4);
  __syncthreads();
  if constexpr (norm_kind(K))
    stage_norm<K>(xs, gs, a, a.normed && blockIdx.x == 0 ? a.normed + t * a.cols : nullptr);
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.0f;
#pragma unroll
  for (int s = 0; s < kStages; ++s) {
    wait_stage(s);
    __syncthreads();
    const int i1 = min(cols, (s + 1) * nb / kStages * 32);
    for (int i = s * nb / kStages * 32 + lane; i < i1; i += 32) {
      const float xv = xs[i];
#pragma unroll
      for (int m = 0; m < M; ++m)
        acc[m] = fmaf(xv, load_w<W>(tile + (m * R + warp) * stride, i), acc[m]);
    }
  }
  float d[M];
#pragma unroll
  for (int m = 0; m < M; ++m) d[m] = warp_fold(acc[m]);
  int64_t r = r0 + warp;
  const Seg sg = seg_of<K>(a.segs, 0, r);
  if (lane != 0 || r >= sg.rows) return;
  const int64_t at = t * sg.rows + r;
  if constexpr (gate_up_kind(K)) {
    // CPU: g / (1 + std::exp(-g)) * up; exp in double then narrowed tracks glibc's expf.
    const float e = float(exp(-double(d[0])));
    sg.out[at] = round_act(a.act, d[0] / (1.0f + e) * d[M - 1]);
  } else {
    float v = d[0];
    if (sg.bias) v += sg.bias[r];
    v = round_act(a.act, v);
    sg.out[at] = v;
    if constexpr (K == Kind::kResidual) {  // add_rmsnorm's add (add_residual_kernel's statements)
      const float s = a.h[at] + v;
      a.sum[at] = s;
      a.h[at] = round_act(a.act, s);
    }
  }
}

// Shared bytes of a staged launch, or 0 when the tile does not fit (then the u16 kernels run).
size_t staged_smem(Kind k, int64_t cols, int64_t& stride) {
  stride = (cols * 2 + 15) / 16 * 16;
  const int m = gate_up_kind(k) ? 2 : 1;
  const size_t bytes =
      size_t(cols) * 4 * (norm_kind(k) ? 2 : 1) + size_t(m) * kStagedRows * size_t(stride);
  return bytes <= kStagedMaxSmem ? bytes : 0;
}

template <WType W, Kind K>
int staged_launch(Staged& a, int64_t T, size_t smem, Stream st) {
  if (smem > 48 * 1024) {
    const int e = int(cudaFuncSetAttribute(staged_kernel<W, K>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    if (e) return e;
  }
  const dim3 grid(unsigned((a.rows + kStagedRows - 1) / kStagedRows), unsigned(T));
  if (int e = launch_pdl(staged_kernel<W, K>, grid, dim3(32 * kStagedRows), smem, st, a)) return e;
  return launch_status();
}
template <Kind K>
int staged(WType w, Staged& a, int64_t T, size_t smem, Stream st) {
  if (w == WType::BF16) return staged_launch<WType::BF16, K>(a, T, smem, st);
  return staged_launch<WType::F16, K>(a, T, smem, st);
}

bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}
bool vec_ok(const void* w, const float* x, int64_t cols) {
  return cols % 8 == 0 && aligned16(w) && aligned16(x);
}
template <WType W>
dim3 grid_for(int64_t rows, int64_t T) {
  return dim3(unsigned((rows + Cfg<W>::kRowsPerBlock - 1) / Cfg<W>::kRowsPerBlock), unsigned(T));
}

template <WType W, int U>
int gemv_u(float* out, const float* x, int64_t T, const DevWeight& w, const float* bias, Act act,
           Stream st) {
  launch_pdl(gemv_kernel<W, U>, grid_for<W>(w.rows, T), kThreads, 0, st, out, x, w.data, w.rows,
             w.cols, bias, act, vec_ok(w.data, x, w.cols));
  return launch_status();
}
// The staged kernels beat u16 on the layer-sized shapes; the LM head-sized ones already run at
// the copy roofline with u16 (docs/NUMERICS.md, CUDA section).
constexpr int64_t kStagedDefaultMaxRows = 32768;

template <WType W>
int gemv_t(float* out, const float* x, int64_t T, const DevWeight& w, const float* bias, Act act,
           Stream st, GemvVariant v) {
  if constexpr (W != WType::F32) {
    const bool want = v == GemvVariant::kStaged ||
                      (v == GemvVariant::kDefault && w.rows <= kStagedDefaultMaxRows);
    Staged a;
    const size_t smem = staged_smem(Kind::kPlain, w.cols, a.stride);
    if (want && smem && vec_ok(w.data, x, w.cols)) {
      a.segs.s[0] = {w.data, bias, out, w.rows};
      a.rows = w.rows, a.cols = w.cols, a.x = x, a.act = act;
      return staged<Kind::kPlain>(W, a, T, smem, st);
    }
  }
  // u16 x-early was the fastest schedule on every decode shape measured on the H200 (u8 within
  // 1.3% on the lm_head); docs/NUMERICS.md's CUDA section has the table.
  if (v == GemvVariant::kU8Early) return gemv_u<W, 8>(out, x, T, w, bias, act, st);
  return gemv_u<W, 16>(out, x, T, w, bias, act, st);
}

template <WType W, int U>
int rmsnorm_qkv_u(const Segs& segs, const float* x, int64_t T, const float* gain, float eps,
                  int64_t cols, Act act, bool vec, Stream st) {
  const size_t smem = size_t(cols) * sizeof(float);
  if (smem > 48 * 1024) {
    const int e = int(cudaFuncSetAttribute(rmsnorm_qkv_kernel<W, U>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    if (e) return e;
  }
  const int64_t rows = segs.s[0].rows + segs.s[1].rows + segs.s[2].rows;
  launch_pdl(rmsnorm_qkv_kernel<W, U>, grid_for<W>(rows, T), kThreads, smem, st, segs, x, gain, eps,
             cols, act, vec);
  return launch_status();
}
template <WType W>
int rmsnorm_qkv_t(const Segs& segs, const float* x, int64_t T, const float* gain, float eps,
                  int64_t cols, Act act, bool vec, Stream st) {
  if constexpr (W != WType::F32) {
    Staged a;
    const size_t smem = staged_smem(Kind::kQkv, cols, a.stride);
    if (smem && vec && aligned16(x) && aligned16(gain)) {
      a.segs = segs, a.rows = segs.s[0].rows + segs.s[1].rows + segs.s[2].rows;
      a.cols = cols, a.x = x, a.gain = gain, a.eps = eps, a.act = act;
      return staged<Kind::kQkv>(W, a, T, smem, st);
    }
  }
  return rmsnorm_qkv_u<W, 16>(segs, x, T, gain, eps, cols, act, vec, st);
}

template <WType W, int U>
int gate_up_u(float* out, const float* x, int64_t T, const DevWeight& wg, const DevWeight& wu,
              Act act, Stream st) {
  const bool vec = vec_ok(wg.data, x, wg.cols) && aligned16(wu.data);
  launch_pdl(gate_up_silu_kernel<W, U>, grid_for<W>(wg.rows, T), kThreads, 0, st, out, x, wg.data,
             wu.data, wg.rows, wg.cols, act, vec);
  return launch_status();
}
template <WType W>
int gate_up_t(float* out, const float* x, int64_t T, const DevWeight& wg, const DevWeight& wu,
              Act act, Stream st) {
  if constexpr (W != WType::F32) {
    Staged a;
    const size_t smem = staged_smem(Kind::kGateUp, wg.cols, a.stride);
    if (smem && vec_ok(wg.data, x, wg.cols) && aligned16(wu.data)) {
      a.segs.s[0] = {wg.data, nullptr, out, wg.rows};
      a.segs.s[1] = {wu.data, nullptr, out, wu.rows};
      a.rows = wg.rows, a.cols = wg.cols, a.x = x, a.act = act;
      return staged<Kind::kGateUp>(W, a, T, smem, st);
    }
  }
  return gate_up_u<W, 16>(out, x, T, wg, wu, act, st);
}

template <WType W>
int gemv_add_residual_t(float* delta, float* h, float* sum, const float* x, int64_t T,
                        const DevWeight& w, Act act, Stream st) {
  if constexpr (W != WType::F32) {
    Staged a;
    const size_t smem = staged_smem(Kind::kResidual, w.cols, a.stride);
    if (w.rows <= kStagedDefaultMaxRows && smem && vec_ok(w.data, x, w.cols)) {
      a.segs.s[0] = {w.data, nullptr, delta, w.rows};
      a.rows = w.rows, a.cols = w.cols, a.x = x, a.act = act, a.h = h, a.sum = sum;
      return staged<Kind::kResidual>(W, a, T, smem, st);
    }
  }
  if (const int e = gemv_t<W>(delta, x, T, w, nullptr, act, st, GemvVariant::kDefault)) return e;
  return add_residual(h, delta, sum, T * w.rows, act, st);
}

template <WType W>
int norm_gate_up_t(float* out, float* normed, const float* s, int64_t T, const float* gain,
                   float eps, const DevWeight& wg, const DevWeight& wu, Act act, Stream st) {
  if constexpr (W != WType::F32) {
    Staged a;
    const size_t smem = staged_smem(Kind::kNormGateUp, wg.cols, a.stride);
    if (smem && vec_ok(wg.data, s, wg.cols) && aligned16(wu.data) && aligned16(gain)) {
      a.segs.s[0] = {wg.data, nullptr, out, wg.rows};
      a.segs.s[1] = {wu.data, nullptr, out, wu.rows};
      a.rows = wg.rows, a.cols = wg.cols, a.x = s, a.gain = gain, a.eps = eps, a.act = act;
      a.normed = normed;
      return staged<Kind::kNormGateUp>(W, a, T, smem, st);
    }
  }
  if (const int e = fused_rmsnorm(normed, s, gain, T, wg.cols, eps, act, st)) return e;
  return gate_up_t<W>(out, normed, T, wg, wu, act, st);
}

}  // namespace

int gemv(float* out, const float* x, int64_t T, const DevWeight& w, const float* bias, Act act,
         Stream stream, GemvVariant variant) {
  if (T <= 0 || w.rows <= 0) return 0;
  switch (w.type) {
    case WType::BF16:
      return gemv_t<WType::BF16>(out, x, T, w, bias, act, stream, variant);
    case WType::F16:
      return gemv_t<WType::F16>(out, x, T, w, bias, act, stream, variant);
    case WType::F32:
      return gemv_t<WType::F32>(out, x, T, w, bias, act, stream, variant);
  }
  return int(cudaErrorInvalidValue);
}

int rmsnorm_qkv(float* q, float* k, float* v, const float* x, int64_t T, const float* gain,
                float eps, const DevWeight& wq, const DevWeight& wk, const DevWeight& wv,
                const float* bq, const float* bk, const float* bv, Act act, Stream stream) {
  if (T <= 0) return 0;
  if (wq.type != wk.type || wq.type != wv.type || wq.cols != wk.cols || wq.cols != wv.cols)
    return int(cudaErrorInvalidValue);
  Segs segs;
  segs.s[0] = {wq.data, bq, q, wq.rows};
  segs.s[1] = {wk.data, bk, k, wk.rows};
  segs.s[2] = {wv.data, bv, v, wv.rows};
  // x is staged in shared memory (16-byte aligned), so only the weights' alignment matters.
  const bool vec =
      wq.cols % 8 == 0 && aligned16(wq.data) && aligned16(wk.data) && aligned16(wv.data);
  switch (wq.type) {
    case WType::BF16:
      return rmsnorm_qkv_t<WType::BF16>(segs, x, T, gain, eps, wq.cols, act, vec, stream);
    case WType::F16:
      return rmsnorm_qkv_t<WType::F16>(segs, x, T, gain, eps, wq.cols, act, vec, stream);
    case WType::F32:
      return rmsnorm_qkv_t<WType::F32>(segs, x, T, gain, eps, wq.cols, act, vec, stream);
  }
  return int(cudaErrorInvalidValue);
}

int gate_up_silu(float* out, const float* x, int64_t T, const DevWeight& wg, const DevWeight& wu,
                 Act act, Stream stream) {
  if (T <= 0) return 0;
  if (wg.type != wu.type || wg.rows != wu.rows || wg.cols != wu.cols)
    return int(cudaErrorInvalidValue);
  switch (wg.type) {
    case WType::BF16:
      return gate_up_t<WType::BF16>(out, x, T, wg, wu, act, stream);
    case WType::F16:
      return gate_up_t<WType::F16>(out, x, T, wg, wu, act, stream);
    case WType::F32:
      return gate_up_t<WType::F32>(out, x, T, wg, wu, act, stream);
  }
  return int(cudaErrorInvalidValue);
}

int gemv_add_residual(float* delta, float* h, float* sum, const float* x, int64_t T,
                      const DevWeight& w, Act act, Stream stream) {
  if (T <= 0 || w.rows <= 0) return 0;
  switch (w.type) {
    case WType::BF16:
      return gemv_add_residual_t<WType::BF16>(delta, h, sum, x, T, w, act, stream);
    case WType::F16:
      return gemv_add_residual_t<WType::F16>(delta, h, sum, x, T, w, act, stream);
    case WType::F32:
      return gemv_add_residual_t<WType::F32>(delta, h, sum, x, T, w, act, stream);
  }
  return int(cudaErrorInvalidValue);
}

int rmsnorm_gate_up_silu(float* out, float* normed, const float* s, int64_t T, const float* gain,
                         float eps, const DevWeight& wg, const DevWeight& wu, Act act,
                         Stream stream) {
  if (T <= 0) return 0;
  if (wg.type != wu.type || wg.rows != wu.rows || wg.cols != wu.cols)
    return int(cudaErrorInvalidValue);
  switch (wg.type) {
    case WType::BF16:
      return norm_gate_up_t<WType::BF16>(out, normed, s, T, gain, eps, wg, wu, act, stream);
    case WType::F16:
      return norm_gate_up_t<WType::F16>(out, normed, s, T, gain, eps, wg, wu, act, stream);
    case WType::F32:
      return norm_gate_up_t<WType::F32>(out, normed, s, T, gain, eps, wg, wu, act, stream);
  }
  return int(cudaErrorInvalidValue);
}

}  // namespace fusecheck::cuda
