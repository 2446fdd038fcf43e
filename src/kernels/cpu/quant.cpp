#include "kernels/cpu/quant.h"

#include <algorithm>
#include <cmath>

namespace fusecheck {

int8_t int8_code(float x, float scale) {
  return static_cast<int8_t>(std::clamp(std::rint(x / scale), -kInt8Max, kInt8Max));
}

uint8_t fp8_e4m3_encode(float r) {
  if (std::isnan(r)) return 0x7f;
  const uint8_t sign = std::signbit(r) ? 0x80 : 0;
  const float a = std::fabs(r);
  if (a < 0x1p-6f) return sign | static_cast<uint8_t>(a * 512.0f);  // subnormal: m * 2^-9
  int e = 0;
  const float m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  const int biased = e - 1 + 7;
  const int mant = static_cast<int>((m * 2.0f - 1.0f) * 8.0f);
  return sign | static_cast<uint8_t>(biased << 3) | static_cast<uint8_t>(mant);
}

float fp8_e4m3_decode(uint8_t code) {
  const int exp = (code >> 3) & 15, mant = code & 7;
  float a;
  if (exp == 15 && mant == 7)
    a = NAN;
  else if (exp == 0)
    a = std::ldexp(static_cast<float>(mant), -9);
  else
    a = std::ldexp(1.0f + static_cast<float>(mant) / 8.0f, exp - 7);
  return (code & 0x80) ? -a : a;
}

float int8_roundtrip(float x, float scale) {
  const float q = std::clamp(std::rint(x / scale), -kInt8Max, kInt8Max);  // rint: ties to even
  return q * scale;
}

float fp8_e4m3_round(float y) {
  if (std::isnan(y)) return y;
  const float a = std::fabs(y);
  if (a >= kFp8E4M3Max) return std::copysign(kFp8E4M3Max, y);  // saturate
  // Spacing of representable values: 2^(e-3) for normals (e >= -6), 2^-9 for subnormals.
  int e = 0;
  std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1): the leading bit is 2^(e-1)
  const int exponent = std::max(e - 1, -6);
  const float quantum = std::ldexp(1.0f, exponent - 3);
  const float r = std::rint(a / quantum) * quantum;
  return std::copysign(std::min(r, kFp8E4M3Max), y);
}

float fp8_roundtrip(float x, float scale) {
  return fp8_e4m3_round(x / scale) * scale;
}

}  // namespace fusecheck
