# The CUDA backend's kernels (src/kernels/cuda/), built as their own static library so the rest of
# the project builds unchanged without a GPU toolchain. FUSECHECK_CUDA defaults to ON when nvcc is
# found (on PATH, CUDACXX, or /usr/local/cuda/bin) and OFF in sanitizer and fuzzer builds, whose
# flags nvcc does not take. Included from the top-level CMakeLists.txt (enable_language must run
# in the top directory).
if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
endif()
include(CheckLanguage)
check_language(CUDA)
set(_fc_cuda_default OFF)
if(CMAKE_CUDA_COMPILER AND NOT FUSECHECK_SANITIZE AND NOT FUSECHECK_FUZZ)
  set(_fc_cuda_default ON)
endif()
option(FUSECHECK_CUDA "Build the CUDA kernels (src/kernels/cuda) and their tests" ${_fc_cuda_default})
if(NOT FUSECHECK_CUDA)
  return()
endif()

enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
add_library(fusecheck_cuda STATIC
  src/kernels/cuda/device.cpp
  src/kernels/cuda/gemv.cu
  src/kernels/cuda/gemm.cu
  src/kernels/cuda/split_gemm.cu
  src/kernels/cuda/norm.cu
  src/kernels/cuda/elementwise.cu
  src/kernels/cuda/sample.cu
  src/kernels/cuda/rope.cu
  src/kernels/cuda/attention.cu
  src/kernels/cuda/decoder.cu)
target_include_directories(fusecheck_cuda PUBLIC ${CMAKE_SOURCE_DIR}/src)
# The directory's -Wall/-ffp-contract options are g++ flags nvcc rejects: the target sets its own.
set_property(TARGET fusecheck_cuda PROPERTY COMPILE_OPTIONS "")
# CMake 3.25 knows no CUDA 20 standard for nvcc 13 (and would otherwise take CXX_STANDARD 20):
# the target asks for CUDA 17 and the sources get -std=c++20 below. CMake's own -std=c++17 is
# blanked so nvcc does not warn about the redefinition on every file.
set(CMAKE_CUDA17_STANDARD_COMPILE_OPTION "")
set(CMAKE_CUDA17_EXTENSION_COMPILE_OPTION "")
set_target_properties(fusecheck_cuda PROPERTIES CUDA_STANDARD 17 CUDA_EXTENSIONS OFF
                      CUDA_ARCHITECTURES OFF POSITION_INDEPENDENT_CODE ON)
target_compile_options(fusecheck_cuda PRIVATE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -ffp-contract=off>
  # sm_90a machine code for Hopper, compute_80 PTX that the driver compiles for other GPUs.
  # --fmad=false: a * b + c stays two roundings unless the code calls fmaf, as on the CPU.
  # -lineinfo: source lines for ncu's stall sampling and compute-sanitizer (no effect on the code).
  $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20 -gencode=arch=compute_90a,code=sm_90a
    -gencode=arch=compute_80,code=compute_80 --fmad=false -lineinfo -Xcompiler=-Wall,-Wextra
    -Wno-deprecated-gpu-targets>)
target_link_libraries(fusecheck_cuda PUBLIC CUDA::cudart_static CUDA::cublasLt)
set_target_properties(fusecheck_cuda PROPERTIES OUTPUT_NAME fusecheck_cuda_kernels)

# The backend behind the seam as a module, libfusecheck_cuda.so beside the fusecheck binary: the
# engine dlopens it for --device cuda only (kernels/backend_loader.h), so no other program or
# command maps cudart and the 540 MB libcublasLt at start-up. Self-contained: the kernels, cudart
# (static), the seam's Buffer and the backend are linked in with hidden visibility; it exports
# fusecheck_cuda_module() alone and needs only libcublasLt, fmt and the C/C++ runtimes.
add_library(fusecheck_cuda_module MODULE
  src/kernels/cuda/cuda_backend.cpp
  src/kernels/cuda/cuda_module.cpp
  src/kernels/backend.cpp)
target_include_directories(fusecheck_cuda_module PRIVATE ${CMAKE_SOURCE_DIR}/src)
target_link_libraries(fusecheck_cuda_module PRIVATE fusecheck_cuda fmt::fmt
                      nlohmann_json::nlohmann_json)
target_link_options(fusecheck_cuda_module PRIVATE -Wl,--no-undefined -Wl,--exclude-libs,ALL)
set_target_properties(fusecheck_cuda_module PROPERTIES
  OUTPUT_NAME fusecheck_cuda PREFIX lib
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}
  CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
# Only the loader knows the module exists; the rest of fusecheck_lib compiles as without CUDA.
set_property(SOURCE src/kernels/backend_loader.cpp APPEND PROPERTY COMPILE_DEFINITIONS
             FUSECHECK_CUDA_MODULE_BUILT=1)
