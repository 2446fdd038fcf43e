// The cuBLASLt plumbing shared by the standard prefill GEMM (gemm.cu) and the fused prefill
// projections (split_gemm.cu): the context's handle, workspace and staging buffers, and one
// matmul with fp32 accumulation into an fp32 result.
#pragma once

#include <cublasLt.h>

#include <vector>

#include "kernels/cuda/common.cuh"

namespace fusecheck::cuda {

// One GEMM shape's cuBLASLt descriptors and the algorithm the heuristic chose for it.
struct LtPlan {
  WType type = WType::BF16;
  int64_t n = 0, rows = 0, cols = 0;  // x rows, weight rows, weight cols
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

struct GemmContext {
  cublasLtHandle_t handle = nullptr;
  Stream stream = nullptr;
  void* workspace = nullptr;  // [kGemmWorkspace] bytes
  void* xw = nullptr;         // x staged for the GEMM: x in the weight type, or split pieces
  size_t xw_bytes = 0;
  float* acc = nullptr;  // fp32 GEMM results — sized on demand
  size_t acc_floats = 0;
  int64_t max_tokens = 0, max_cols = 0;
  std::vector<LtPlan> plans;  // one per shape seen (a model has a handful per prompt length)
};

constexpr size_t kGemmWorkspace = size_t{32} << 20;

// d[n, w.rows] = x[n, w.cols] · Wᵀ + beta · d, row-major, fp32 accumulation (CUBLAS_COMPUTE_32F:
// no TF32 for fp32 weights). x holds n rows in w's type; d may be read (beta = 1) and written in
// place. Returns 0 or 1000 + the cuBLAS status.
int lt_matmul(GemmContext* c, float* d, const void* x, int64_t n, const DevWeight& w, float beta);

// Grow the context's buffers to at least `floats` / `bytes` (a prompt's shape: never inside a
// recorded decode step, whose T = 1 never reaches a GEMM). Return a cudaError_t.
int ensure_acc(GemmContext* c, size_t floats);
int ensure_xw(GemmContext* c, size_t bytes);

}  // namespace fusecheck::cuda
