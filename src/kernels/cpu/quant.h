// Lossy KV-cache formats. The cache stores the codes (1 byte per value) and attention dequantises
// them on read; code -> value gives back exactly what the roundtrip functions below give, so the
// stored format and the quantise-dequantise emulation are the same numbers.
#pragma once

#include <cstdint>

namespace fusecheck {

// Symmetric int8: q = clamp(rint(x / scale), -127, 127), returned as q * scale.
float int8_roundtrip(float x, float scale);
// fp8 e4m3 ("fn": no infinities, max 448, 3 mantissa bits, subnormals down to 2^-9), round to
// nearest even, saturating: returned as e4m3(x / scale) * scale.
float fp8_e4m3_round(float y);
float fp8_roundtrip(float x, float scale);
// The codes: value = int8_code(x, s) * s == int8_roundtrip(x, s), and
// fp8_e4m3_decode(fp8_e4m3_encode(fp8_e4m3_round(y))) == fp8_e4m3_round(y) (NaN: 0x7f).
int8_t int8_code(float x, float scale);
uint8_t fp8_e4m3_encode(float r);  // r: a value fp8_e4m3_round returned
float fp8_e4m3_decode(uint8_t code);
constexpr float kFp8E4M3Max = 448.0f;
constexpr float kInt8Max = 127.0f;

namespace cpu {
using fusecheck::fp8_e4m3_round;
using fusecheck::fp8_roundtrip;
using fusecheck::int8_roundtrip;
using fusecheck::kFp8E4M3Max;
using fusecheck::kInt8Max;
}  // namespace cpu

}  // namespace fusecheck
