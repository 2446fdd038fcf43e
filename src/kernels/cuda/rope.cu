// Rotary embedding (transformers' rotate_half layout): the standard kernel with cos/sin rounded to
// the activation type and three roundings per output, and the fused per-head RMSNorm + RoPE that
// keeps everything in fp32 and rounds once (also with the KV append of the rotated keys and the
// values in the same launch). One warp per (token, head); the position of token t is *pos + t,
// read on the device.
#include "kernels/cuda/decode_parts.cuh"

namespace fusecheck::cuda {
namespace {

// x: [T, heads, head_dim]; cos_tab, sin_tab: [max_pos, head_dim / 2]. grid (heads, T), 32 threads.
__global__ void rope_kernel(float* x, int64_t heads, int64_t head_dim, const float* cos_tab,
                            const float* sin_tab, const int32_t* pos, Act act) {
  pdl_start();
  const int64_t t = blockIdx.y, half = head_dim / 2;
  float* xh = x + (t * heads + blockIdx.x) * head_dim;
  const int64_t p = int64_t(*pos) + t;
  for (int64_t i = threadIdx.x; i < half; i += 32) {
    const float c = round_act(act, cos_tab[p * half + i]);  // cos.to(x.dtype)
    const float s = round_act(act, sin_tab[p * half + i]);
    const float x1 = xh[i], x2 = xh[i + half];
    const float a1 = round_act(act, x1 * c), b1 = round_act(act, -x2 * s);
    const float a2 = round_act(act, x2 * c), b2 = round_act(act, x1 * s);
    xh[i] = round_act(act, a1 + b1);
    xh[i + half] = round_act(act, a2 + b2);
  }
}

// As rope_kernel, with the head's RMSNorm and gain first (gain == nullptr: RoPE only), fp32 cos
// and sin, and one rounding. x: [T, heads, head_dim]; gain: [head_dim]; cos_tab, sin_tab:
// [max_pos, head_dim / 2]. grid (heads, T), 32 threads.
__global__ void qk_norm_rope_kernel(float* x, int64_t heads, int64_t head_dim, const float* gain,
                                    float eps, const float* cos_tab, const float* sin_tab,
                                    const int32_t* pos, Act act) {
  pdl_start();
  const int64_t t = blockIdx.y, half = head_dim / 2, p = int64_t(*pos) + t;
  norm_rope_head(x + (t * heads + blockIdx.x) * head_dim, head_dim, gain, eps, cos_tab + p * half,
                 sin_tab + p * half, act, int(threadIdx.x));
}

// qk_norm_rope_kernel over q and k in one launch: block x < q_heads is q's head x, the others
// k's head x - q_heads; each head exactly as the one-tensor kernel. q: [T, q_heads, head_dim];
// k: [T, k_heads, head_dim]; q_gain, k_gain: [head_dim] or nullptr; cos_tab, sin_tab:
// [max_pos, head_dim / 2]. grid (q_heads + k_heads, T), 32 threads.
__global__ void qk_norm_rope_pair_kernel(float* q, int64_t q_heads, const float* q_gain, float* k,
                                         int64_t k_heads, const float* k_gain, int64_t head_dim,
                                         float eps, const float* cos_tab, const float* sin_tab,
                                         const int32_t* pos, Act act) {
  pdl_start();
  const int64_t t = blockIdx.y, half = head_dim / 2, p = int64_t(*pos) + t;
  const bool is_q = blockIdx.x < q_heads;
  const int64_t head = is_q ? blockIdx.x : blockIdx.x - q_heads, heads = is_q ? q_heads : k_heads;
  norm_rope_head((is_q ? q : k) + (t * heads + head) * head_dim, head_dim, is_q ? q_gain : k_gain,
                 eps, cos_tab + p * half, sin_tab + p * half, act, int(threadIdx.x));
}

// qk_norm_rope_pair_kernel, then the cache stores of kv_append_pair: block x < q_heads is q's head
// x; the next k_heads blocks k's heads, rotated exactly as there, then stored to kc; the last
// k_heads blocks copy v's heads to vc. q: [T, q_heads, hd]; k, v: [T, k_heads, hd]; kc, vc:
// [max_ctx, k_heads · hd] (F32/BF16/F16: no scales). grid (q_heads + 2 · k_heads, T), 32 threads.
__global__ void qk_norm_rope_append_kernel(float* q, int64_t q_heads, const float* q_gain, float* k,
                                           int64_t k_heads, const float* k_gain, const float* v,
                                           KvView kc, KvView vc, int64_t head_dim, float eps,
                                           const float* cos_tab, const float* sin_tab,
                                           const int32_t* pos, Act act) {
  pdl_start();
  const int64_t t = blockIdx.y, half = head_dim / 2, p = int64_t(*pos) + t, b = blockIdx.x;
  if (b < q_heads) {
    norm_rope_head(q + (t * q_heads + b) * head_dim, head_dim, q_gain, eps, cos_tab + p * half,
                   sin_tab + p * half, act, int(threadIdx.x));
    return;
  }
  const bool is_k = b < q_heads + k_heads;
  const int64_t head = is_k ? b - q_heads : b - q_heads - k_heads, c0 = head * head_dim;
  const int64_t row = p * k_heads * head_dim + c0;  // the head's first element in the cache
  if (is_k) {
    float* kh = k + (t * k_heads + head) * head_dim;
    norm_rope_head(kh, head_dim, k_gain, eps, cos_tab + p * half, sin_tab + p * half, act,
                   int(threadIdx.x));
    __syncthreads();  // the head's rotated values, written by every lane, before they are stored
    for (int64_t i = threadIdx.x; i < head_dim; i += 32) kv_store(kc, row + i, c0 + i, kh[i]);
  } else {  // (one loop per side: selecting a KvView at run time would copy it to local memory)
    const float* vh = v + (t * k_heads + head) * head_dim;
    for (int64_t i = threadIdx.x; i < head_dim; i += 32) kv_store(vc, row + i, c0 + i, vh[i]);
  }
}

}  // namespace

int rope(float* x, int64_t T, int64_t heads, int64_t head_dim, const float* cos_tab,
         const float* sin_tab, const int32_t* pos, Act act, Stream stream) {
  if (T <= 0) return 0;
  launch_pdl(rope_kernel, dim3(unsigned(heads), unsigned(T)), 32, 0, stream, x, heads, head_dim,
             cos_tab, sin_tab, pos, act);
  return launch_status();
}

int qk_norm_rope(float* x, int64_t T, int64_t heads, int64_t head_dim, const float* gain, float eps,
                 const float* cos_tab, const float* sin_tab, const int32_t* pos, Act act,
                 Stream stream) {
  if (T <= 0) return 0;
  launch_pdl(qk_norm_rope_kernel, dim3(unsigned(heads), unsigned(T)), 32, 0, stream, x, heads,
             head_dim, gain, eps, cos_tab, sin_tab, pos, act);
  return launch_status();
}

int qk_norm_rope_pair(float* q, int64_t q_heads, const float* q_gain, float* k, int64_t k_heads,
                      const float* k_gain, int64_t T, int64_t head_dim, float eps,
                      const float* cos_tab, const float* sin_tab, const int32_t* pos, Act act,
                      Stream stream) {
  if (T <= 0 || q_heads + k_heads <= 0) return 0;
  launch_pdl(qk_norm_rope_pair_kernel, dim3(unsigned(q_heads + k_heads), unsigned(T)), 32, 0,
             stream, q, q_heads, q_gain, k, k_heads, k_gain, head_dim, eps, cos_tab, sin_tab, pos,
             act);
  return launch_status();
}

int qk_norm_rope_kv_append(float* q, int64_t q_heads, const float* q_gain, float* k,
                           int64_t k_heads, const float* k_gain, const float* v, const KvView& kc,
                           const KvView& vc, int64_t T, int64_t head_dim, float eps,
                           const float* cos_tab, const float* sin_tab, const int32_t* pos, Act act,
                           Stream stream) {
  if (T <= 0 || q_heads + k_heads <= 0) return 0;
  for (const KvView* c : {&kc, &vc})
    if (c->type == KvType::INT8 || c->type == KvType::FP8) return int(cudaErrorInvalidValue);
  launch_pdl(qk_norm_rope_append_kernel, dim3(unsigned(q_heads + 2 * k_heads), unsigned(T)), 32, 0,
             stream, q, q_heads, q_gain, k, k_heads, k_gain, v, kc, vc, head_dim, eps, cos_tab,
             sin_tab, pos, act);
  return launch_status();
}

}  // namespace fusecheck::cuda
