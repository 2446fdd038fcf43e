// Lossy KV-cache formats, emulated exactly: values are quantised and immediately dequantised, so a
// cache of these formats holds precisely the values a real int8 / fp8 cache would give back.
#pragma once

#include <cstdint>

namespace fusecheck::cpu {

// Symmetric int8: q = clamp(rint(x / scale), -127, 127), returned as q * scale.
float int8_roundtrip(float x, float scale);
// fp8 e4m3 ("fn": no infinities, max 448, 3 mantissa bits, subnormals down to 2^-9), round to
// nearest even, saturating: returned as e4m3(x / scale) * scale.
float fp8_e4m3_round(float y);
float fp8_roundtrip(float x, float scale);
constexpr float kFp8E4M3Max = 448.0f;
constexpr float kInt8Max = 127.0f;

}  // namespace fusecheck::cpu
