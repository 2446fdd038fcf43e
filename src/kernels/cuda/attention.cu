// The KV cache on the device (store, calibrate, read back) and attention over it in place:
// eager (standard: rounded scores, fp32 softmax, rounded probabilities) and flash-decoding (fused:
// keys split over blocks, an online softmax in fp32 per block, one reduction kernel, one rounding).
// Query token t is at position *pos + t and sees keys 0 .. *pos + t (causal); read on the device.
#include "kernels/cuda/decode_parts.cuh"

namespace fusecheck::cuda {
namespace {

constexpr int kWarps = kSplitWarps;  // eager_kernel's and flash_split_kernel's block: 128 threads

float qmax_of(KvType t) {
  return t == KvType::INT8 ? 127.0f : 448.0f;
}

// Unless already calibrated (scale[0] != 0): amax over x: [T, kv_dim] per channel (scale: [kv_dim])
// or per tensor (scale: [1]), then scale = amax > 0 ? amax / qmax : 1. One block of 1024 threads;
// NaN is ignored as std::max does.
__global__ void calibrate_kernel(float* scale, const float* x, int64_t T, int64_t kv_dim,
                                 bool per_channel, float qmax) {
  __shared__ float red[32];
  const bool done = scale[0] != 0.0f;  // calibrated by an earlier store: scales are static
  __syncthreads();                     // every thread reads the flag before any writes it
  if (done) return;
  float a_all = 0.0f;
  for (int64_t c = threadIdx.x; c < kv_dim; c += blockDim.x) {
    float a = 0.0f;
    for (int64_t t = 0; t < T; ++t) a = fmaxf(a, fabsf(x[t * kv_dim + c]));
    if (per_channel) scale[c] = a > 0.0f ? a / qmax : 1.0f;
    a_all = fmaxf(a_all, a);
  }
  if (per_channel) return;
  a_all = warp_max(a_all);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = a_all;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int k = 1; k < int(blockDim.x / 32); ++k) a_all = fmaxf(a_all, red[k]);
    scale[0] = a_all > 0.0f ? a_all / qmax : 1.0f;
  }
}

// Row t of x: [T, kv_dim] goes to cache row *pos + t; blockIdx.y == 1 stores xv into v (K and V
// in one launch), else xk into k.
__global__ void append_kernel(KvView kk, const float* xk, KvView vv, const float* xv, int64_t T,
                              int64_t kv_dim, const int32_t* pos) {
  pdl_start();
  const KvView& kv = blockIdx.y ? vv : kk;
  const float* x = blockIdx.y ? xv : xk;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= T * kv_dim) return;
  kv_store(kv, int64_t(*pos) * kv_dim + i, i % kv_dim, x[i]);
}

__global__ void read_kernel(float* out, KvView kv, int64_t n, int64_t kv_dim) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n * kv_dim) out[i] = kv_load(kv, i, i % kv_dim);
}

// q·k with an fp16 accumulator, each partial sum rounded to fp16 (the CPU's dot_fp16_accumulate);
// sequential, run by lane 0.
__device__ float key_dot_fp16(const float* q, const KvView& k, int64_t row_off, int64_t ch_off,
                              int64_t head_dim) {
  float acc = 0.0f;
  for (int64_t d = 0; d < head_dim; ++d)
    acc = __half2float(__float2half_rn(acc + q[d] * kv_load(k, row_off + d, ch_off + d)));
  return acc;
}

// grid (heads, T), kWarps·32 threads. scores: [T, heads, max_ctx].
__global__ void eager_kernel(float* out, const float* q, KvView k, KvView v, const int32_t* pos,
                             AttnShape s, Act act, float* scores) {
  pdl_start();
  __shared__ double dred[32];
  __shared__ float fred[32];
  const int64_t h = blockIdx.x, t = blockIdx.y, kvh = h / (s.heads / s.kv_heads);
  const int64_t kv_dim = s.kv_heads * s.head_dim, ch = kvh * s.head_dim;
  const int64_t n_ctx = int64_t(*pos) + t + 1;
  const float* qh = q + (t * s.heads + h) * s.head_dim;
  float* sc = scores + (t * s.heads + h) * s.max_ctx;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float qr[kMaxHeadDim / 32];
#pragma unroll
  for (int c = 0; c < kMaxHeadDim / 32; ++c)
    qr[c] = lane + 32 * c < s.head_dim ? qh[lane + 32 * c] : 0.0f;
  float mx = -INFINITY;
  for (int64_t j = warp; j < n_ctx; j += kWarps) {
    const float dot = key_dot(qr, k, j * kv_dim + ch, ch, s.head_dim, lane);
    // matmul(q, k^T) rounds, then "* self.scaling" rounds again.
    const float sj = round_act(act, round_act(act, dot) * s.scale);
    if (lane == 0) sc[j] = sj;
    mx = fmaxf(mx, sj);
  }
  if (lane == 0) fred[warp] = mx;
  __syncthreads();
  mx = fred[0];
  for (int w = 1; w < kWarps; ++w) mx = fmaxf(mx, fred[w]);
  double sum = 0.0;
  for (int64_t j = threadIdx.x; j < n_ctx; j += blockDim.x) {
    const float e = float(exp(double(sc[j] - mx)));  // std::exp(s - max) on the CPU
    sc[j] = e;
    sum += e;
  }
  sum = warp_sum(sum);
  if (lane == 0) dred[warp] = sum;
  __syncthreads();
  sum = 0.0;
  for (int w = 0; w < kWarps; ++w) sum += dred[w];
  const float inv = float(1.0 / sum);
  for (int64_t j = threadIdx.x; j < n_ctx; j += blockDim.x) sc[j] = round_act(act, sc[j] * inv);
  __syncthreads();
  for (int64_t d = threadIdx.x; d < s.head_dim; d += blockDim.x) {
    float acc = 0.0f;
    for (int64_t j = 0; j < n_ctx; ++j) acc += sc[j] * kv_load(v, j * kv_dim + ch + d, ch + d);
    out[(t * s.heads + h) * s.head_dim + d] = round_act(act, acc);
  }
}

// One split of the keys for (head, token): an online softmax per warp, merged in the block.
// work: [T, heads, splits, head_dim + 2] = (m, l, acc[head_dim]). grid (heads, T, splits).
__global__ void flash_split_kernel(const float* q, KvView k, KvView v, const int32_t* pos,
                                   AttnShape s, bool fp16_acc, float* work) {
  pdl_start();
  __shared__ float part[kWarps][kMaxHeadDim + 2];
  const int64_t h = blockIdx.x, t = blockIdx.y, sp = blockIdx.z, splits = gridDim.z;
  const int64_t kvh = h / (s.heads / s.kv_heads), kv_dim = s.kv_heads * s.head_dim;
  const int64_t ch = kvh * s.head_dim;
  const int64_t n_ctx = int64_t(*pos) + t + 1, chunk = (n_ctx + splits - 1) / splits;
  const int64_t j0 = sp * chunk, j1 = min(n_ctx, j0 + chunk);
  const float* qh = q + (t * s.heads + h) * s.head_dim;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float qr[kMaxHeadDim / 32], acc[kMaxHeadDim / 32];
#pragma unroll
  for (int c = 0; c < kMaxHeadDim / 32; ++c) {
    qr[c] = lane + 32 * c < s.head_dim ? qh[lane + 32 * c] : 0.0f;
    acc[c] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int64_t j = j0 + warp; j < j1; j += kWarps) {
    float dot = fp16_acc ? (lane == 0 ? key_dot_fp16(qh, k, j * kv_dim + ch, ch, s.head_dim) : 0.f)
                         : key_dot(qr, k, j * kv_dim + ch, ch, s.head_dim, lane);
    const float sj = __shfl_sync(0xffffffffu, dot, 0) * s.scale;  // fp32, never rounded
    online_step(sj, v, j * kv_dim + ch, ch, s.head_dim, lane, m, l, acc);
  }
#pragma unroll
  for (int c = 0; c < kMaxHeadDim / 32; ++c)
    if (lane + 32 * c < s.head_dim) part[warp][2 + lane + 32 * c] = acc[c];
  if (lane == 0) part[warp][0] = m, part[warp][1] = l;
  __syncthreads();
  float* o = work + ((t * s.heads + h) * splits + sp) * (s.head_dim + 2);
  for (int64_t d = threadIdx.x; d < s.head_dim + 2; d += blockDim.x) o[d] = split_merge(part, d);
}

// Loads this lane's values d = lane + 32c of split k's accumulator (0 past the end). w: one
// (head, token)'s [splits, head_dim + 2] work rows; v: [kMaxHeadDim / 32].
__device__ __forceinline__ void load_split(float* v, const float* w, int k, int splits,
                                           int64_t head_dim, int lane) {
#pragma unroll
  for (int c = 0; c < kMaxHeadDim / 32; ++c) {
    const int64_t d = lane + 32 * c;
    v[c] = k < splits && d < head_dim ? w[k * (head_dim + 2) + 2 + d] : 0.0f;
  }
}

// Merges the splits and rounds once: M = max m_k, e_k = exp(m_k - M) (0 for an empty split, whose
// acc is 0), l = sum l_k e_k, out = round(acc · (1 / l)) with acc = sum acc_k e_k. Parallel over
// the splits: warp 0 forms e (shared) and l (a warp fold, lane k holding splits k, k + 32, ...);
// warp w sums acc_k e_k over splits k = w, w + kReduceWarps, ... in increasing k, a lane per 32nd
// value (the first two splits' values loaded while warp 0 forms e); the warps' partials are then
// added in warp order. work: [T, heads, splits, head_dim + 2] = (m, l, acc[head_dim]);
// out: [T, heads, head_dim]. grid (heads, T), kReduceWarps·32 threads, (splits + 1) floats of
// dynamic shared memory.
__global__ void flash_reduce_kernel(float* out, const float* work, AttnShape s, int splits,
                                    Act act) {
  pdl_start();
  extern __shared__ float e_sh[];  // [splits] e_k, then [1] 1 / l
  __shared__ float part[kReduceWarps][kMaxHeadDim];
  const int64_t h = blockIdx.x, t = blockIdx.y, stride = s.head_dim + 2;
  const float* w = work + (t * s.heads + h) * splits * stride;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float v0[kMaxHeadDim / 32], v1[kMaxHeadDim / 32];
  load_split(v0, w, warp, splits, s.head_dim, lane);
  load_split(v1, w, warp + kReduceWarps, splits, s.head_dim, lane);
  if (warp == 0) {
    float m = -INFINITY;
    for (int k = lane; k < splits; k += 32) m = fmaxf(m, w[k * stride]);
    const float M = warp_max(m);
    float l = 0.0f;
    for (int k = lane; k < splits; k += 32) {
      const float mk = w[k * stride];
      const float e = mk != -INFINITY ? expf(mk - M) : 0.0f;
      e_sh[k] = e;
      l += w[k * stride + 1] * e;
    }
    l = warp_fold(l);
    if (lane == 0) e_sh[splits] = 1.0f / l;
  }
  __syncthreads();
  float acc[kMaxHeadDim / 32] = {};
  if (warp < splits) add_weighted(acc, v0, e_sh[warp], s.head_dim, lane);
  if (warp + kReduceWarps < splits)
    add_weighted(acc, v1, e_sh[warp + kReduceWarps], s.head_dim, lane);
  for (int k = warp + 2 * kReduceWarps; k < splits; k += kReduceWarps) {
    load_split(v0, w, k, splits, s.head_dim, lane);
    add_weighted(acc, v0, e_sh[k], s.head_dim, lane);
  }
#pragma unroll
  for (int c = 0; c < kMaxHeadDim / 32; ++c)
    if (lane + 32 * c < s.head_dim) part[warp][lane + 32 * c] = acc[c];
  __syncthreads();
  const float inv_l = e_sh[splits];
  for (int64_t d = threadIdx.x; d < s.head_dim; d += blockDim.x) {
    float a = part[0][d];
    for (int k = 1; k < kReduceWarps; ++k) a += part[k][d];
    out[(t * s.heads + h) * s.head_dim + d] = round_act(act, a * inv_l);
  }
}

}  // namespace

int kv_calibrate(KvView kv, const float* x, int64_t T, int64_t kv_dim, Stream stream) {
  if (kv.type != KvType::INT8 && kv.type != KvType::FP8) return 0;
  calibrate_kernel<<<1, 1024, 0, stream>>>(kv.scale, x, T, kv_dim, kv.per_channel,
                                           qmax_of(kv.type));
  return launch_status();
}

int kv_append(KvView kv, const float* x, int64_t T, int64_t kv_dim, const int32_t* pos,
              Stream stream) {
  const int64_t n = T * kv_dim;
  if (n <= 0) return 0;
  launch_pdl(append_kernel, unsigned((n + 255) / 256), 256, 0, stream, kv, x, kv, x, T, kv_dim,
             pos);
  return launch_status();
}

int kv_append_pair(KvView k, const float* xk, KvView v, const float* xv, int64_t T, int64_t kv_dim,
                   const int32_t* pos, Stream stream) {
  const int64_t n = T * kv_dim;
  if (n <= 0) return 0;
  launch_pdl(append_kernel, dim3(unsigned((n + 255) / 256), 2), 256, 0, stream, k, xk, v, xv, T,
             kv_dim, pos);
  return launch_status();
}

int kv_read(float* out, KvView kv, int64_t n, int64_t kv_dim, Stream stream) {
  if (n * kv_dim <= 0) return 0;
  read_kernel<<<unsigned((n * kv_dim + 255) / 256), 256, 0, stream>>>(out, kv, n, kv_dim);
  return launch_status();
}

int attention_eager(float* out, const float* q, KvView k, KvView v, const int32_t* pos,
                    const AttnShape& s, Act act, float* scores, Stream stream) {
  if (s.head_dim > kMaxHeadDim || s.heads % s.kv_heads) return int(cudaErrorInvalidValue);
  launch_pdl(eager_kernel, dim3(unsigned(s.heads), unsigned(s.T)), kWarps * 32, 0, stream, out, q,
             k, v, pos, s, act, scores);
  return launch_status();
}

int64_t attention_flash_work_floats(const AttnShape& s, int splits) {
  return s.T * s.heads * splits * (s.head_dim + 2);
}

int attention_flash(float* out, const float* q, KvView k, KvView v, const int32_t* pos,
                    const AttnShape& s, Act act, bool fp16_acc, int splits, float* work,
                    Stream stream) {
  if (s.head_dim > kMaxHeadDim || s.heads % s.kv_heads || splits < 1)
    return int(cudaErrorInvalidValue);
  launch_pdl(flash_split_kernel, dim3(unsigned(s.heads), unsigned(s.T), unsigned(splits)),
             kWarps * 32, 0, stream, q, k, v, pos, s, fp16_acc, work);
  if (const int e = launch_status()) return e;
  launch_pdl(flash_reduce_kernel, dim3(unsigned(s.heads), unsigned(s.T)), kReduceWarps * 32,
             size_t(splits + 1) * sizeof(float), stream, out, work, s, splits, act);
  return launch_status();
}

}  // namespace fusecheck::cuda
