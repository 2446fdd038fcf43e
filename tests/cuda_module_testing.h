// Where the tests find the CUDA backend module (libfusecheck_cuda.so, kernels/backend_loader.h):
// $FUSECHECK_CUDA_MODULE, else the build's own (FUSECHECK_CUDA_MODULE, when that file exists),
// else "" (the loader's default: beside the test binary, then the library search path), so a
// test binary copied to a GPU machine with the module beside it finds it there.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "kernels/backend_loader.h"

namespace fusecheck::testing {

inline std::string cuda_module_path() {
  if (const char* v = getenv("FUSECHECK_CUDA_MODULE"); v && *v) return v;
#ifdef FUSECHECK_CUDA_MODULE
  if (::access(FUSECHECK_CUDA_MODULE, F_OK) == 0) return FUSECHECK_CUDA_MODULE;
#endif
  return "";
}

// A CUDA backend, or nullptr with *why set (no CUDA build, no module, no GPU).
inline std::shared_ptr<Backend> cuda_backend_or_why(const CudaBackendOptions& o, std::string* why) {
  auto b = load_cuda_backend(o, cuda_module_path());
  if (b.ok()) return *b;
  *why = b.error().message;
  return nullptr;
}

}  // namespace fusecheck::testing
