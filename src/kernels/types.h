// The value types every backend shares: the activation type ops round to, and a weight matrix
// as a backend reads it.
#pragma once

#include <cstdint>
#include <cstring>

#include "io/safetensors.h"
#include "util/half.h"

namespace fusecheck {

// The type an op's output is rounded to: the model dtype (standard path) or fp32 (reference).
// Activations are always held in fp32 buffers; in the model-dtype path the values are rounded to
// this type and stay exactly representable in their fp32 slots (docs/NUMERICS.md).
enum class ActType : uint8_t { F32, BF16, F16 };

// A weight matrix in the memory a backend reads: the memory map itself on the CPU (zero copy),
// device memory on a GPU (Backend::adopt_weight). data == nullptr: absent (optional tensors).
struct Weight {
  DType dtype = DType::F32;  // F32, F16 or BF16
  const void* data = nullptr;
  int64_t rows = 0;  // output features (1 for vectors)
  int64_t cols = 0;  // input features (the vector length for vectors)
  explicit operator bool() const { return data != nullptr; }
};

// Element i of a vector weight (a bias), widened exactly to fp32; memcpy, since a checkpoint's
// tensors need not be aligned.
inline float element_f32(const Weight& w, int64_t i) {
  const auto* p = static_cast<const unsigned char*>(w.data);
  uint16_t h;
  float f;
  switch (w.dtype) {
    case DType::BF16:
      std::memcpy(&h, p + 2 * i, 2);
      return bf16_to_f32(h);
    case DType::F16:
      std::memcpy(&h, p + 2 * i, 2);
      return f16_to_f32(h);
    default:
      std::memcpy(&f, p + 4 * i, 4);
      return f;
  }
}

// Rounds one value to `t` (round to nearest even; identity for F32): where an op stores its
// output. Inline: every op calls it per element.
inline float round_one(ActType t, float x) {
  switch (t) {
    case ActType::F32:
      return x;
    case ActType::BF16:
      return bf16_to_f32(f32_to_bf16(x));
    case ActType::F16:
      return f16_to_f32(f32_to_f16(x));
  }
  return x;
}

namespace cpu {
using fusecheck::ActType;
using fusecheck::round_one;
using fusecheck::Weight;
}  // namespace cpu

}  // namespace fusecheck
