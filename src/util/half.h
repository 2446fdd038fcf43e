// Scalar conversions between fp32 and the 16-bit float formats of checkpoints.
// bf16 is the top half of an fp32; f16 is IEEE binary16. Rounding to 16 bits is
// round-to-nearest-even, as PyTorch's .to(torch.bfloat16) / .half() do, with NaN kept quiet.
#pragma once

#include <cstdint>
#include <cstring>

namespace fusecheck {

inline float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t f32_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bf16_to_f32(uint16_t h) {
  return bits_to_f32(uint32_t(h) << 16);
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                         // round to nearest even
  return uint16_t(u >> 16);
}

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (mant << 13));  // Inf/NaN
  if (exp == 0) {
    // zero or subnormal: value = mant * 2^-24
    float v = float(mant) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  return bits_to_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

inline uint16_t f32_to_f16(float f) {
  uint32_t u = f32_to_bits(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  uint32_t au = u & 0x7fffffffu;
  if (au > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (au >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: Inf
  if (au < 0x38800000u) {                        // below the smallest normal (2^-14): subnormal
    float af = bits_to_f32(au);
    // Subnormal step is 2^-24; nearbyint rounds half to even in the default mode.
    float q = af * 16777216.0f;
    uint32_t m = uint32_t(q);
    float rem = q - float(m);
    if (rem > 0.5f || (rem == 0.5f && (m & 1u))) ++m;
    return sign | uint16_t(m);
  }
  uint32_t r = au + 0xfffu + ((au >> 13) & 1u) - (112u << 23);
  return sign | uint16_t(r >> 13);
}

}  // namespace fusecheck
