// The Highway fp32 emulation of the bf16-pair dot (gemm_bf16dot_emu.cpp), internal to
// gemm_bf16dot.cpp and its tests.
#pragma once

#include <cstdint>

namespace fusecheck::cpu {

// res[t * rows + r] = the pair dot of x row t and w row r, for t < T, r in [r0, r1): no bias, no
// rounding. x: [T, x_stride] bf16 bits, zero padded (x_stride a multiple of 32, >= cols);
// w: [rows, cols] bf16 bits (any alignment); res: [T, rows].
void bf16dot_rows_emulated(const uint16_t* x, int64_t x_stride, int64_t T, const uint16_t* w,
                           int64_t rows, int64_t cols, int64_t r0, int64_t r1, float* res);
// The Highway target the emulation dispatches to now ("AVX2", ...).
const char* bf16dot_emulation_target();

}  // namespace fusecheck::cpu
