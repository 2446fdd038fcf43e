// Writes fp32 tensors as one safetensors file, atomically (a temporary file renamed into place),
// so a reader never sees half a file and an interrupted write leaves the old one intact.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "util/result.h"

namespace fusecheck {

struct F32Tensor {
  std::string name;
  std::vector<uint64_t> shape;  // row-major; product == data.size()
  std::span<const float> data;
};

Status write_safetensors_f32(const std::string& path, const std::vector<F32Tensor>& tensors);

}  // namespace fusecheck
