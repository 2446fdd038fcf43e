// The one symbol libfusecheck_cuda.so exports (kernels/backend_loader.h): the ABI stamp of this
// build and the factory. Everything else in the module has hidden visibility.
#include "kernels/backend_loader.h"

namespace {

std::shared_ptr<fusecheck::Backend> make(const fusecheck::CudaBackendOptions& o,
                                         std::string* error) {
  return fusecheck::make_cuda_backend(o, error);
}

constexpr fusecheck::CudaModule kModule{fusecheck::kCudaModuleAbi, fusecheck::cuda_module_layout(),
                                        &make};

}  // namespace

extern "C" __attribute__((visibility("default"))) const fusecheck::CudaModule*
fusecheck_cuda_module() {
  return &kModule;
}
