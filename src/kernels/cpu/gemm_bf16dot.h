// The bf16-pair dot (the opt-in `--dot bf16-pairs` kernel choice, docs/NUMERICS.md "bf16-pair
// dot"): a linear projection whose activations are rounded to bf16 once per row and multiplied
// with bf16 weights read as stored, two products per fp32 lane and step, as AVX512-BF16's
// vdpbf16ps computes. It does NOT follow the 32-lane dot-product contract of cpu::dot_lanes: its
// summation order, and so its last bits, differ from the contract's and between implementations
// (AVX512-BF16 hardware, the Highway fp32 emulation on other CPUs). Agreement with the scalar
// definition (linear_bf16dot_reference) is by NMSE, not bit for bit.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/thread_pool.h"

namespace fusecheck::cpu {

// Which implementation runs. kAuto: AVX512-BF16 when this CPU has it, else the emulation.
enum class Bf16DotImpl : uint8_t { kAuto, kNative, kEmulated };

// Whether this CPU runs vdpbf16ps (AVX512-BF16); the native kernel needs it.
bool bf16dot_native_available();
// "avx512-bf16" or "emulated (HWY_TARGET)": what kAuto runs here, for bench output.
std::string bf16dot_impl_name();

// out[t, r] = round_one(act, dot2(bf16(x[t, :]), W[r, :]) (+ bias[r])) for t < T, r < W.rows.
// W must be BF16 (read in place from the map, never converted); bias any dtype or absent. x is
// rounded to bf16 (RNE) once per row. Rows are partitioned over `pool` (nullptr: this thread).
// kNative on a CPU without AVX512-BF16 runs the emulation.
// scratch (optional): where the bf16 copy of x goes, [T, cols rounded up to 32], reused across
// calls (nullptr: a fresh buffer per call).
// x: [T, W.cols], out: [T, W.rows], bias: [W.rows] or absent.
void linear_bf16dot(float* out, const float* x, int64_t T, const Weight& w, const Weight& bias,
                    ActType act, ThreadPool* pool, Bf16DotImpl impl = Bf16DotImpl::kAuto,
                    std::vector<uint16_t>* scratch = nullptr);

// The definition, scalar (the oracle the SIMD kernels are measured against): each of 16 fp32
// lanes j sums the bf16 pairs m = j, j + 16, ... (elements 2m, 2m + 1, zero padded) in increasing
// m as acc = (acc + x[2m+1] w[2m+1]) + x[2m] w[2m] (exact products, fp32 adds, round to nearest
// even), then the lanes are folded in halves (lane j += lane j + w, w = 8, 4, 2, 1).
void linear_bf16dot_reference(float* out, const float* x, int64_t T, const Weight& w,
                              const Weight& bias, ActType act);

}  // namespace fusecheck::cpu
