// Prefill GEMM through cuBLASLt: out[T, rows] = x[T, cols] · W[rows, cols]ᵀ with fp32 accumulation,
// then one kernel adds the bias in fp32 and rounds once (PyTorch's bf16 addmm on CUDA rounds its
// fp32 accumulator once too). The tensor cores' summation order is not the lane contract, so this
// is a tolerance op. In column-major terms: D[rows, T] = op_T(W as [cols, rows]) · x as [cols, T].
#include "kernels/cuda/gemm_lt.cuh"

namespace fusecheck::cuda {

namespace {

template <WType W>
__global__ void to_weight_type(void* dst, const float* x, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  if constexpr (W == WType::BF16)
    static_cast<uint16_t*>(dst)[i] = f32_to_bf16_bits(x[i]);
  else
    static_cast<__half*>(dst)[i] = __float2half_rn(x[i]);
}

__global__ void bias_round(float* out, const float* acc, int64_t rows, int64_t n, const float* bias,
                           Act act) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float s = acc[i];
  if (bias) s += bias[i % rows];
  out[i] = round_act(act, s);
}

cudaDataType_t dtype_of(WType w) {
  return w == WType::BF16 ? CUDA_R_16BF : w == WType::F16 ? CUDA_R_16F : CUDA_R_32F;
}

}  // namespace

namespace {

void destroy_plan(LtPlan& p) {
  if (p.ld) cublasLtMatrixLayoutDestroy(p.ld);
  if (p.lb) cublasLtMatrixLayoutDestroy(p.lb);
  if (p.la) cublasLtMatrixLayoutDestroy(p.la);
  if (p.op) cublasLtMatmulDescDestroy(p.op);
  p = LtPlan{};
}

// The descriptors and the heuristic's algorithm for one shape. Made once per shape: creating
// them and asking the heuristic on every call cost more host time than the small GEMMs of a
// prefill layer take on the GPU.
int make_plan(GemmContext* c, LtPlan& p) {
  const cudaDataType_t ab = dtype_of(p.type);
  cublasLtMatmulPreference_t pref = nullptr;
  int st = cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F);  // no TF32
  const cublasOperation_t tr = CUBLAS_OP_T;
  if (!st) st = cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &tr, sizeof(tr));
  if (!st) st = cublasLtMatrixLayoutCreate(&p.la, ab, uint64_t(p.cols), uint64_t(p.rows), p.cols);
  if (!st) st = cublasLtMatrixLayoutCreate(&p.lb, ab, uint64_t(p.cols), uint64_t(p.n), p.cols);
  if (!st)
    st = cublasLtMatrixLayoutCreate(&p.ld, CUDA_R_32F, uint64_t(p.rows), uint64_t(p.n), p.rows);
  if (!st) st = cublasLtMatmulPreferenceCreate(&pref);
  const uint64_t ws = kGemmWorkspace;
  if (!st)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                              sizeof(ws));
  cublasLtMatmulHeuristicResult_t h{};
  int found = 0;
  if (!st)
    st = cublasLtMatmulAlgoGetHeuristic(c->handle, p.op, p.la, p.lb, p.ld, p.ld, pref, 1, &h,
                                        &found);
  if (!st && found == 0) st = CUBLAS_STATUS_NOT_SUPPORTED;
  if (pref) cublasLtMatmulPreferenceDestroy(pref);
  if (!st) p.algo = h.algo;
  return st;
}

}  // namespace

int lt_matmul(GemmContext* c, float* d, const void* x, int64_t n, const DevWeight& w, float beta) {
  LtPlan* p = nullptr;
  for (LtPlan& q : c->plans)
    if (q.type == w.type && q.n == n && q.rows == w.rows && q.cols == w.cols) p = &q;
  if (!p) {
    if (c->plans.size() >= 64) {  // many prompt lengths (a long chat): start over
      for (LtPlan& q : c->plans) destroy_plan(q);
      c->plans.clear();
    }
    LtPlan fresh;
    fresh.type = w.type, fresh.n = n, fresh.rows = w.rows, fresh.cols = w.cols;
    if (const int st = make_plan(c, fresh)) {
      destroy_plan(fresh);
      return 1000 + st;  // cuBLAS statuses offset from cudaError_t values
    }
    c->plans.push_back(fresh);
    p = &c->plans.back();
  }
  const float one = 1.0f;
  const int st = cublasLtMatmul(c->handle, p->op, &one, w.data, p->la, x, p->lb, &beta, d, p->ld, d,
                                p->ld, &p->algo, c->workspace, kGemmWorkspace, c->stream);
  return st ? 1000 + st : 0;
}

int ensure_acc(GemmContext* c, size_t floats) {
  if (floats <= c->acc_floats) return 0;
  cudaFree(c->acc);
  c->acc = nullptr, c->acc_floats = 0;
  if (cudaMalloc(&c->acc, floats * sizeof(float)) != cudaSuccess)
    return int(cudaErrorMemoryAllocation);
  c->acc_floats = floats;
  return 0;
}

int ensure_xw(GemmContext* c, size_t bytes) {
  if (bytes <= c->xw_bytes) return 0;
  cudaFree(c->xw);
  c->xw = nullptr, c->xw_bytes = 0;
  if (cudaMalloc(&c->xw, bytes) != cudaSuccess) return int(cudaErrorMemoryAllocation);
  c->xw_bytes = bytes;
  return 0;
}

GemmContext* gemm_create(int64_t max_tokens, int64_t max_cols, Stream stream) {
  auto* c = new GemmContext;
  c->stream = stream;
  c->max_tokens = max_tokens;
  c->max_cols = max_cols;
  bool ok = cublasLtCreate(&c->handle) == CUBLAS_STATUS_SUCCESS;
  ok = ok && cudaMalloc(&c->workspace, kGemmWorkspace) == cudaSuccess;
  ok = ok && ensure_xw(c, size_t(max_tokens * max_cols) * 2) == 0;
  if (!ok) {
    gemm_destroy(c);
    return nullptr;
  }
  return c;
}

void gemm_destroy(GemmContext* c) {
  if (!c) return;
  for (LtPlan& p : c->plans) destroy_plan(p);
  cudaFree(c->acc);
  cudaFree(c->xw);
  cudaFree(c->workspace);
  if (c->handle) cublasLtDestroy(c->handle);
  delete c;
}

int gemm(GemmContext* c, float* out, const float* x, int64_t T, const DevWeight& w,
         const float* bias, Act act) {
  if (T <= 0) return 0;
  if (T > c->max_tokens || w.cols > c->max_cols) return int(cudaErrorInvalidValue);
  const int64_t n = T * w.rows;
  if (const int e = ensure_acc(c, size_t(n))) return e;
  const void* xin = x;
  if (w.type != WType::F32) {
    const int64_t nx = T * w.cols;
    const unsigned blocks = unsigned((nx + 255) / 256);
    if (w.type == WType::BF16)
      to_weight_type<WType::BF16><<<blocks, 256, 0, c->stream>>>(c->xw, x, nx);
    else
      to_weight_type<WType::F16><<<blocks, 256, 0, c->stream>>>(c->xw, x, nx);
    xin = c->xw;
  }
  if (const int e = lt_matmul(c, c->acc, xin, T, w, 0.0f)) return e;
  bias_round<<<unsigned((n + 255) / 256), 256, 0, c->stream>>>(out, c->acc, w.rows, n, bias, act);
  return launch_status();
}

}  // namespace fusecheck::cuda
