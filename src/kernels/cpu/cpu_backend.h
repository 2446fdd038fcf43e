// The CPU backend: the Backend table over the SIMD kernels (simd.h, bit-identical to the scalar
// oracle in ops.h on every ISA) and the fused kernels (fused.h). It owns the thread pool the
// projections and attention are split over; weights are read in place from the memory map.
#pragma once

#include <memory>

#include "kernels/backend.h"

namespace fusecheck {

// threads: total threads including the caller; <= 0: the physical cores.
std::shared_ptr<Backend> make_cpu_backend(int threads = 0);

}  // namespace fusecheck
