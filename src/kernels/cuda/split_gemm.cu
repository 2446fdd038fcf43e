// The fused prefill projections on the tensor cores (rmsnorm_qkv_gemm, gate_up_silu_gemm).
//
// The fused groups feed the projections an fp32 x that is never rounded to bf16 (rmsnorm_qkv's
// normalised input); a bf16 GEMM would round it and lose what the fusion means. So x is split
// exactly into bf16 pieces: hi = bf16(x), mid = bf16(x - hi), lo = bf16(x - hi - mid). 3 × 8
// significant bits cover fp32's 24, so hi + mid + lo == x bit for bit whenever 2^-110 <= |x| <
// 2^128 - 2^119 (every fp32 value in that range: tests/cuda/split_exhaustive.cpp; below it lo
// falls into bf16's subnormals and keeps fewer bits, an absolute error under 2^-133; at the top hi
// rounds to infinity; -0 sums to +0, which no dot product can tell apart; docs/NUMERICS.md). Each
// bf16 × bf16 product is exact in fp32 and cuBLASLt accumulates in fp32, so the result is an
// fp32-accumulated dot of the fp32 x — in the tensor cores' order, not the lane contract: a
// tolerance op.
//
// Layout: the pieces are stacked as [P·T, K] (piece p of token t is row p·T + t) and one GEMM per
// weight gives D[P·T, rows]; the epilogue sums a token's partial rows in a fixed order (smallest
// first: (lo + mid) + hi), adds the bias in fp32 and rounds once, as the CPU twin does. kBetaOne
// runs P GEMMs of T rows into one D instead (beta = 1: hi, then + mid, then + lo).
// P = 1 when x is already exact in bf16 (gate_up_silu's input on the bf16 path) or the weights are
// fp32 (an fp32 GEMM of the fp32 x, TF32 off).
#include <algorithm>
#include <initializer_list>
#include <tuple>

#include "kernels/cuda/gemm_lt.cuh"

namespace fusecheck::cuda {
namespace {

constexpr int kSplitThreads = 256;

// Writes x's pieces: hi to pieces[i], mid to pieces[stride + i], lo to pieces[2·stride + i].
__device__ __forceinline__ void split3(uint16_t* pieces, int64_t stride, int64_t i, float x) {
  const uint16_t hi = f32_to_bf16_bits(x);
  const float r1 = x - bf16_bits_to_f32(hi);  // exact: the rounding error of hi
  const uint16_t mid = f32_to_bf16_bits(r1);
  const float r2 = r1 - bf16_bits_to_f32(mid);  // exact, and exact in bf16 (see the header)
  pieces[i] = hi;
  pieces[stride + i] = mid;
  pieces[2 * stride + i] = f32_to_bf16_bits(r2);
}

// One block per token t: xn = norm ? gain · (x · inv_rms(x)) : x (fp32, as the CPU twin computes
// it), then staged for the GEMM: P = 3 pieces of bf16 ([3, T, cols]), P = 1 bf16 (x exact), or fp32
// (f32 true). x: [T, cols]; dst: the context's staging buffer.
__global__ void __launch_bounds__(kSplitThreads)
    stage_rows(void* dst, const float* x, const float* gain, float eps, int64_t T, int64_t cols,
               int pieces, bool f32) {
  __shared__ double red[32];
  const int64_t t = blockIdx.x;
  const float* xt = x + t * cols;
  const float inv = gain ? inv_rms_from(block_sum_squares(xt, cols, red), cols, eps) : 1.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    const float v = gain ? gain[i] * (xt[i] * inv) : xt[i];  // stays fp32
    const int64_t at = t * cols + i;
    if (f32)
      static_cast<float*>(dst)[at] = v;
    else if (pieces == 1)
      static_cast<uint16_t*>(dst)[at] = f32_to_bf16_bits(v);
    else
      split3(static_cast<uint16_t*>(dst), T * cols, at, v);
  }
}

// out[t, r] = round(((D[2T + t, r] + D[T + t, r]) + D[t, r]) + bias[r]) for P = 3; D[t, r] for 1.
__global__ void sum_pieces_round(float* out, const float* d, int64_t n, int64_t rows, int pieces,
                                 const float* bias, Act act) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float s = d[(pieces - 1) * n + i];
  for (int p = pieces - 2; p >= 0; --p) s += d[p * n + i];
  if (bias) s += bias[i % rows];
  out[i] = round_act(act, s);
}

// out[i] = round(silu(g) · u), g and u summed from their pieces as above. dg, du: [P, n].
__global__ void silu_pieces(float* out, const float* dg, const float* du, int64_t n, int pieces,
                            Act act) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float g = dg[(pieces - 1) * n + i], u = du[(pieces - 1) * n + i];
  for (int p = pieces - 2; p >= 0; --p) g += dg[p * n + i], u += du[p * n + i];
  // CPU: g / (1 + std::exp(-g)) * up; exp in double then narrowed, as gate_up_silu_kernel.
  const float e = float(exp(-double(g)));
  out[i] = round_act(act, g / (1.0f + e) * u);
}

unsigned blocks_for(int64_t n) {
  return unsigned((n + 255) / 256);
}

// What the GEMM reads: P pieces of bf16 or fp32 x.
struct Staging {
  int pieces = 3;
  bool f32 = false;
  size_t bytes(int64_t T, int64_t cols) const {
    return size_t(T * cols) * (f32 ? 4 : 2 * size_t(pieces));
  }
};

Staging staging_for(WType w, bool x_exact) {
  if (w == WType::F32) return {1, true};
  return {x_exact ? 1 : 3, false};
}

// d[P, T, w.rows] (stacked) or d[T, w.rows] already summed (kBetaOne, then P reads as 1).
int project(GemmContext* c, float* d, int64_t T, const DevWeight& w, const Staging& s,
            SplitGemm mode) {
  if (mode != SplitGemm::kBetaOne || s.pieces == 1)
    return lt_matmul(c, d, c->xw, s.pieces * T, w, 0.0f);
  const auto* xp = static_cast<const uint16_t*>(c->xw);
  for (int p = 0; p < s.pieces; ++p)
    if (const int e = lt_matmul(c, d, xp + p * T * w.cols, T, w, p == 0 ? 0.0f : 1.0f)) return e;
  return 0;
}

int partial_rows(const Staging& s, SplitGemm mode) {
  return mode == SplitGemm::kBetaOne ? 1 : s.pieces;
}

bool supported(const DevWeight& w) {
  return w.type == WType::BF16 || w.type == WType::F32;
}

}  // namespace

int split_bf16(uint16_t* pieces, const float* x, int64_t n, Stream stream) {
  if (n <= 0) return 0;
  stage_rows<<<1, kSplitThreads, 0, stream>>>(pieces, x, nullptr, 0.0f, 1, n, 3, false);
  return launch_status();
}

int rmsnorm_qkv_gemm(GemmContext* c, float* q, float* k, float* v, const float* x, int64_t T,
                     const float* gain, float eps, const DevWeight& wq, const DevWeight& wk,
                     const DevWeight& wv, const float* bq, const float* bk, const float* bv,
                     Act act, SplitGemm mode) {
  if (T <= 0) return 0;
  if (wq.type != wk.type || wq.type != wv.type || wq.cols != wk.cols || wq.cols != wv.cols ||
      !supported(wq))
    return int(cudaErrorInvalidValue);
  const Staging s = staging_for(wq.type, false);  // xn is fp32, never exact by assumption
  const int64_t cols = wq.cols;
  const int64_t max_rows = std::max(wq.rows, std::max(wk.rows, wv.rows));
  if (const int e = ensure_xw(c, s.bytes(T, cols))) return e;
  if (const int e = ensure_acc(c, size_t(s.pieces * T * max_rows))) return e;
  stage_rows<<<unsigned(T), kSplitThreads, 0, c->stream>>>(c->xw, x, gain, eps, T, cols, s.pieces,
                                                           s.f32);
  if (const int e = launch_status()) return e;
  const int pr = partial_rows(s, mode);
  // One accumulator, reused: the stream orders each epilogue before the next projection's GEMM.
  for (auto [out, w, bias] :
       {std::tuple{q, &wq, bq}, std::tuple{k, &wk, bk}, std::tuple{v, &wv, bv}}) {
    if (const int e = project(c, c->acc, T, *w, s, mode)) return e;
    const int64_t n = T * w->rows;
    sum_pieces_round<<<blocks_for(n), 256, 0, c->stream>>>(out, c->acc, n, w->rows, pr, bias, act);
    if (const int e = launch_status()) return e;
  }
  return 0;
}

int gate_up_silu_gemm(GemmContext* c, float* out, const float* x, int64_t T, const DevWeight& wg,
                      const DevWeight& wu, Act act, bool x_exact, SplitGemm mode) {
  if (T <= 0) return 0;
  if (wg.type != wu.type || wg.rows != wu.rows || wg.cols != wu.cols || !supported(wg))
    return int(cudaErrorInvalidValue);
  const Staging s = staging_for(wg.type, x_exact);
  const int64_t n = T * wg.rows;
  if (const int e = ensure_xw(c, s.bytes(T, wg.cols))) return e;
  const int64_t up_at = (s.pieces * n + 63) / 64 * 64;  // up's result 256-byte aligned
  if (const int e = ensure_acc(c, size_t(up_at + s.pieces * n))) return e;
  stage_rows<<<unsigned(T), kSplitThreads, 0, c->stream>>>(c->xw, x, nullptr, 0.0f, T, wg.cols,
                                                           s.pieces, s.f32);
  if (const int e = launch_status()) return e;
  float* dg = c->acc;
  float* du = c->acc + up_at;
  if (const int e = project(c, dg, T, wg, s, mode)) return e;
  if (const int e = project(c, du, T, wu, s, mode)) return e;
  silu_pieces<<<blocks_for(n), 256, 0, c->stream>>>(out, dg, du, n, partial_rows(s, mode), act);
  return launch_status();
}

}  // namespace fusecheck::cuda
