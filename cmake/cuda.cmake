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
  src/kernels/cuda/norm.cu
  src/kernels/cuda/elementwise.cu
  src/kernels/cuda/rope.cu
  src/kernels/cuda/attention.cu)
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
  $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20 -gencode=arch=compute_90a,code=sm_90a
    -gencode=arch=compute_80,code=compute_80 --fmad=false -Xcompiler=-Wall,-Wextra
    -Wno-deprecated-gpu-targets>)
target_link_libraries(fusecheck_cuda PUBLIC CUDA::cudart_static CUDA::cublasLt)
# The backend behind the seam (kernels/backend.h) once that header is in the tree.
if(EXISTS ${CMAKE_SOURCE_DIR}/src/kernels/backend.h)
  target_sources(fusecheck_cuda PRIVATE src/kernels/cuda/cuda_backend.cpp)
  target_compile_definitions(fusecheck_cuda PUBLIC FUSECHECK_HAVE_CUDA_BACKEND=1)
  target_link_libraries(fusecheck_cuda PUBLIC fusecheck_lib)
  # Model::load builds the CUDA backend for --device cuda: the two static libraries need each
  # other (CMake repeats them on the link line). Link only, and the define on model.cpp alone, so
  # the rest of fusecheck_lib compiles exactly as without CUDA.
  set_property(SOURCE src/model/model.cpp APPEND PROPERTY COMPILE_DEFINITIONS
               FUSECHECK_HAVE_CUDA_BACKEND=1)
  target_link_libraries(fusecheck_lib PUBLIC $<LINK_ONLY:fusecheck_cuda>)
endif()
