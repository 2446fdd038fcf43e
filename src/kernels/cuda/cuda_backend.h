// The CUDA backend: the Backend table (kernels/backend.h) over device memory and one stream, with
// the kernels of kernels/cuda/cuda_ops.h. Ops are asynchronous, allocate nothing in a decode step
// and read the position from device memory, so a T = 1 step can be captured as a CUDA graph.
//
// Numerics against the seam's contract (docs/NUMERICS.md, "CUDA kernels"): the projections on the
// GEMV path, RMSNorm, RoPE, the residual adds, the KV store and the fused projections are
// bit-identical to the CPU kernels (up to the last bit of exp and of a double sum of squares in
// another order); the prefill GEMM (cuBLASLt, T >= kGemmMinTokens, on by default) and the online
// attention (split over keys) are tolerance ops.
#pragma once

#include <memory>
#include <string>

#include "kernels/backend.h"

namespace fusecheck {

struct CudaBackendOptions {
  int device = 0;
  // Prefill projections (T >= 8) through cuBLASLt when the input is exact in the weight type
  // (the op's ActType is the weight's): PyTorch on CUDA does the same. false: the contract GEMV
  // for every T (bit-identical to the CPU, slower prefill).
  bool prefill_gemm = true;
  // Key splits of the online (flash-decoding) attention; 0: from the cache capacity.
  int attention_splits = 0;
  // A fully fused decode step's layers as one persistent launch (decoder_stack; bit-identical to
  // the ops; opt-in, --persistent-decode: docs/PERFORMANCE.md has its measured speed). false: the
  // ops one launch each.
  bool persistent_decode = false;
};

// A CUDA backend on `o.device`, or nullptr with *error set ("no CUDA GPU present", or the CUDA
// error) when none can be used.
std::shared_ptr<Backend> make_cuda_backend(const CudaBackendOptions& o, std::string* error);

}  // namespace fusecheck
