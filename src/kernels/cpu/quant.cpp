#include "kernels/cpu/quant.h"

#include <algorithm>
#include <cmath>

namespace fusecheck::cpu {

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

}  // namespace fusecheck::cpu
