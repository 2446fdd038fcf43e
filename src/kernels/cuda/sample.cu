// Temperature / top-k / top-p / min-p sampling on the device, the CPU Sampler's algorithm
// (model/sampler.cpp) step for step, so a decode step that samples can be captured as a graph:
//   1. e_i = exp((x_i - max) / T) in fp32 (exp in double, then narrowed: the correctly rounded
//      value, glibc expf's in all but rare near-halfway cases); -inf and NaN logits are left out;
//   2. a stable radix sort (CUB) by e descending, so equal e keep ascending ids: the CPU's order;
//   3. one block: top-k, the top-p prefix (cum of e_i / sum in double), min-p, then the draw
//      u (device memory) times the kept mass, walked down the kept prefix.
// The sums in 3 are block-wide tree sums where the CPU adds left to right, so they can differ in
// the last bits: a draw or a top-p cut within ~1e-15 of a boundary may pick the neighbour.
#include <cub/cub.cuh>

#include "kernels/cuda/common.cuh"

namespace fusecheck::cuda {
namespace {

constexpr int kPickThreads = 1024;

// x: [n]; keys, ids: [n]; amax: [1] the argmax of x (cpu argmax: the max the CPU subtracts).
__global__ void sample_prep_kernel(float* keys, int32_t* ids, const float* x, int64_t n,
                                   const int32_t* amax, float temperature) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float m = x[*amax], v = x[i];
  ids[i] = int32_t(i);
  // -1 sorts after every candidate (e >= 0) and marks the left-out ones.
  keys[i] = v > -INFINITY ? float(exp(double((v - m) / temperature))) : -1.0f;
}

using Scan = cub::BlockScan<double, kPickThreads>;
using SumD = cub::BlockReduce<double, kPickThreads>;

// The first i < m whose running sum of (e_j / div) for j <= i reaches target (>= when !strict,
// > when strict), or -1. Chunks of one block, each an inclusive scan plus the carry before it.
__device__ int first_cross(const float* e, int m, double div, double target, bool strict,
                           Scan::TempStorage& ts) {
  __shared__ double carry;
  __shared__ int found;
  if (threadIdx.x == 0) carry = 0.0, found = INT_MAX;
  __syncthreads();
  for (int base = 0; base < m; base += kPickThreads) {
    const int i = base + int(threadIdx.x);
    const double v = i < m ? double(e[i]) / div : 0.0;
    double inc = 0.0;
    Scan(ts).InclusiveSum(v, inc);
    const double c = carry + inc;
    if (i < m && (strict ? c > target : c >= target)) atomicMin(&found, i);
    __syncthreads();
    const bool done = found != INT_MAX;
    if (!done && threadIdx.x == kPickThreads - 1) carry = c;
    __syncthreads();
    if (done) break;
  }
  return found == INT_MAX ? -1 : found;
}

// e, ids: [n] sorted by e descending (left-out logits at the end with e = -1). One block.
__global__ void __launch_bounds__(kPickThreads)
    sample_pick_kernel(int32_t* out, const float* e, const int32_t* ids, int n, SampleArgs a,
                       const double* draw, int32_t* advance) {
  __shared__ union {
    Scan::TempStorage scan;
    SumD::TempStorage sum;
  } ts;
  __shared__ double sh_sum;
  __shared__ int sh_cnt, sh_floor_at;
  if (threadIdx.x == 0) sh_cnt = 0, sh_floor_at = INT_MAX;
  __syncthreads();
  double part = 0.0;
  int cnt = 0;
  for (int i = int(threadIdx.x); i < n; i += kPickThreads)
    if (e[i] >= 0.0f) part += double(e[i]), ++cnt;
  const double total = SumD(ts.sum).Sum(part);
  atomicAdd(&sh_cnt, cnt);
  if (threadIdx.x == 0) sh_sum = total;
  __syncthreads();
  const double sum = sh_sum;
  int keep = sh_cnt;
  if (keep == 0) {  // every logit -inf or NaN: the CPU returns token 0
    if (threadIdx.x == 0) {
      *out = 0;
      if (advance) *advance += 1;
    }
    return;
  }
  if (a.top_k > 0 && a.top_k < keep) keep = int(a.top_k);
  if (a.top_p < 1.0f) {
    const int at = first_cross(e, keep, sum, double(a.top_p), false, ts.scan);
    if (at >= 0) keep = at + 1;
  }
  if (a.min_p > 0.0f) {  // keep = the first i >= 1 with e_i < min_p * e_0
    const float floor_e = a.min_p * e[0];
    for (int i = 1 + int(threadIdx.x); i < keep; i += kPickThreads)
      if (!(e[i] >= floor_e)) atomicMin(&sh_floor_at, i);
    __syncthreads();
    if (sh_floor_at < keep) keep = sh_floor_at;
  }
  part = 0.0;
  for (int i = int(threadIdx.x); i < keep; i += kPickThreads) part += double(e[i]);
  __syncthreads();
  const double kept = SumD(ts.sum).Sum(part);
  if (threadIdx.x == 0) sh_sum = kept;
  __syncthreads();
  const double r = *draw * sh_sum;
  const int at = first_cross(e, keep, 1.0, r, true, ts.scan);
  if (threadIdx.x == 0) {
    *out = ids[at >= 0 ? at : keep - 1];
    if (advance) *advance += 1;
  }
}

struct Layout {
  size_t keys = 0, ids = 0, keys_out = 0, ids_out = 0, amax = 0, temp = 0, temp_bytes = 0,
         total = 0;
};

size_t align_up(size_t v) {
  return (v + 255) / 256 * 256;
}

Layout layout_for(int64_t n) {
  Layout l;
  cub::DeviceRadixSort::SortPairsDescending(
      nullptr, l.temp_bytes, static_cast<float*>(nullptr), static_cast<float*>(nullptr),
      static_cast<int32_t*>(nullptr), static_cast<int32_t*>(nullptr), int(n));
  size_t at = 0;
  auto take = [&](size_t bytes) {
    const size_t here = at;
    at = align_up(at + bytes);
    return here;
  };
  l.keys = take(size_t(n) * 4), l.ids = take(size_t(n) * 4);
  l.keys_out = take(size_t(n) * 4), l.ids_out = take(size_t(n) * 4);
  l.amax = take(4), l.temp = take(l.temp_bytes);
  l.total = at;
  return l;
}

}  // namespace

size_t sample_workspace_bytes(int64_t n) {
  return n > 0 ? layout_for(n).total : 0;
}

int sample(int32_t* out, const float* x, int64_t n, const SampleArgs& a, const double* draw,
           void* ws, Stream stream, int32_t* advance) {
  if (n <= 0 || n > INT32_MAX / 2 || !(a.temperature > 0.0f)) return int(cudaErrorInvalidValue);
  const Layout l = layout_for(n);
  char* w = static_cast<char*>(ws);
  auto* keys = reinterpret_cast<float*>(w + l.keys);
  auto* ids = reinterpret_cast<int32_t*>(w + l.ids);
  auto* keys_out = reinterpret_cast<float*>(w + l.keys_out);
  auto* ids_out = reinterpret_cast<int32_t*>(w + l.ids_out);
  auto* amax = reinterpret_cast<int32_t*>(w + l.amax);
  if (int err = argmax(amax, x, n, stream)) return err;
  sample_prep_kernel<<<unsigned((n + 255) / 256), 256, 0, stream>>>(keys, ids, x, n, amax,
                                                                    a.temperature);
  if (int err = launch_status()) return err;
  size_t temp_bytes = l.temp_bytes;
  if (int err = int(cub::DeviceRadixSort::SortPairsDescending(
          w + l.temp, temp_bytes, keys, keys_out, ids, ids_out, int(n), 0, 32, stream)))
    return err;
  sample_pick_kernel<<<1, kPickThreads, 0, stream>>>(out, keys_out, ids_out, int(n), a, draw,
                                                     advance);
  return launch_status();
}

}  // namespace fusecheck::cuda
