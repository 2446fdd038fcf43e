// The CUDA backend as a module: libfusecheck_cuda.so (built beside the fusecheck binary) holds the
// CUDA kernels and links cudart and cuBLASLt; the engine loads it with dlopen only when
// --device cuda is asked, so nothing else (check, the CPU engine, the tests, the Python module)
// maps the CUDA libraries (about 80 ms of start-up for libcublasLt alone).
//
// The module exports one extern "C" function, fusecheck_cuda_module(), returning a CudaModule:
// an ABI version and a layout fingerprint of the seam's structs, which the loader checks before it
// calls the factory, so a module from another build is refused instead of misread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kernels/backend.h"
#include "kernels/cuda/cuda_backend.h"
#include "util/result.h"

namespace fusecheck {

// Bumped whenever Backend's table, CudaBackendOptions or CudaModule change.
inline constexpr uint32_t kCudaModuleAbi = 5;
inline constexpr const char* kCudaModuleName = "libfusecheck_cuda.so";

// sizeof of the structs that cross the boundary, folded into one number: a stale module built
// from other headers differs here even when nobody bumped kCudaModuleAbi.
inline constexpr uint64_t cuda_module_layout() {
  return (uint64_t(sizeof(Weight)) << 48) ^ (uint64_t(sizeof(KvLayer)) << 36) ^
         (uint64_t(sizeof(AttentionParams)) << 24) ^ (uint64_t(sizeof(CudaBackendOptions)) << 12) ^
         uint64_t(sizeof(Buffer)) ^ (uint64_t(sizeof(std::string)) << 56);
}

struct CudaModule {
  uint32_t abi = 0;     // kCudaModuleAbi of the module's build
  uint64_t layout = 0;  // cuda_module_layout() of the module's build
  // A backend on o.device, or nullptr with *error set ("no CUDA GPU present", a CUDA error).
  std::shared_ptr<Backend> (*make)(const CudaBackendOptions& o, std::string* error) = nullptr;
};

// The exported symbol's name and type.
inline constexpr const char* kCudaModuleSymbol = "fusecheck_cuda_module";
using CudaModuleEntry = const CudaModule* (*)();

// Loads the module and makes a backend. module_path: the module file; empty: the loader looks
// beside the binary or shared library that contains this code (dladdr), then on the library
// search path. Errors (one line each): "this fusecheck was built without CUDA (no nvcc at build
// time)", "cannot load libfusecheck_cuda.so: <dlerror>", "<path> is from another build (...)",
// "no CUDA GPU present". The module stays loaded for the life of the process.
Result<std::shared_ptr<Backend>> load_cuda_backend(const CudaBackendOptions& o,
                                                   const std::string& module_path = "");

// Where the loader looks first when module_path is empty: <dir of this code's object>/
// libfusecheck_cuda.so.
std::string default_cuda_module_path();

}  // namespace fusecheck
