#include "kernels/backend_loader.h"

#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <climits>

namespace fusecheck {

std::string default_cuda_module_path() {
  Dl_info info{};
  link_map* lm = nullptr;
  std::string self;
  if (::dladdr1(reinterpret_cast<void*>(&default_cuda_module_path), &info,
                reinterpret_cast<void**>(&lm), RTLD_DL_LINKMAP) != 0 &&
      lm && lm->l_name && lm->l_name[0] != '\0') {
    self = lm->l_name;  // a shared library (the Python module): its path as loaded
  } else {
    // The main program: its link_map has no name and dladdr gives argv[0], which may be bare.
    char buf[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n > 0) self.assign(buf, size_t(n));
  }
  const size_t slash = self.rfind('/');
  if (slash == std::string::npos) return kCudaModuleName;
  return self.substr(0, slash + 1) + kCudaModuleName;
}

#ifndef FUSECHECK_CUDA_MODULE_BUILT

Result<std::shared_ptr<Backend>> load_cuda_backend(const CudaBackendOptions&, const std::string&) {
  return make_error("this fusecheck was built without CUDA (no nvcc at build time)");
}

#else

namespace {

// dlopen's handle for the first candidate that exists, or the library search path's answer.
Result<void*> open_module(const std::string& module_path) {
  std::string path = module_path.empty() ? default_cuda_module_path() : module_path;
  if (module_path.empty() && ::access(path.c_str(), F_OK) != 0) path = kCudaModuleName;
  void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* why = ::dlerror();
    return make_error("cannot load {}: {}", kCudaModuleName, why ? why : "unknown dlopen error");
  }
  return h;
}

}  // namespace

Result<std::shared_ptr<Backend>> load_cuda_backend(const CudaBackendOptions& o,
                                                   const std::string& module_path) {
  FC_ASSIGN(handle, open_module(module_path));
  // Never dlclosed: backends and their buffers may live until exit.
  auto entry = reinterpret_cast<CudaModuleEntry>(::dlsym(handle, kCudaModuleSymbol));
  if (!entry)
    return make_error("cannot load {}: it exports no {}", kCudaModuleName, kCudaModuleSymbol);
  const CudaModule* m = entry();
  if (!m || m->abi != kCudaModuleAbi || m->layout != cuda_module_layout() || !m->make)
    return make_error(
        "{} is from another build (ABI {}, expected {}); rebuild it with this fusecheck",
        kCudaModuleName, m ? m->abi : 0, kCudaModuleAbi);
  std::string why;
  std::shared_ptr<Backend> b = m->make(o, &why);
  if (!b) return make_error("{}", why);
  return b;
}

#endif

}  // namespace fusecheck
