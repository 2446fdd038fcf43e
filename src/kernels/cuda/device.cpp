// Runtime helpers of the CUDA backend: device presence, allocation and synchronous copies.
#include <cuda_runtime.h>

#include "kernels/cuda/cuda_ops.h"

namespace fusecheck::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}
const char* error_string(int err) {
  if (err >= 1000) return "cuBLASLt call failed";
  return cudaGetErrorString(cudaError_t(err));
}
int last_error() {
  return int(cudaGetLastError());
}
int malloc_device(void** p, size_t bytes) {
  return int(cudaMalloc(p, bytes));
}
int free_device(void* p) {
  return int(cudaFree(p));
}
int copy_to_device(void* dst, const void* src, size_t bytes) {
  return int(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}
int copy_to_host(void* dst, const void* src, size_t bytes) {
  return int(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}
int synchronize() {
  return int(cudaDeviceSynchronize());
}
int stream_create(Stream* s) {
  return int(cudaStreamCreateWithFlags(s, cudaStreamNonBlocking));
}
int stream_destroy(Stream s) {
  return int(cudaStreamDestroy(s));
}

}  // namespace fusecheck::cuda
