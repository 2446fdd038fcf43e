// The key/value cache: per layer, keys and values after RoPE for every position so far.
// Format kSame stores them in the activation type of the path that wrote them (bf16 for a bf16
// model's standard path, fp32 for the reference): they are already rounded to it, so this is
// lossless. The lossy formats of the kernel profiles: kFp16 stores fp16; kInt8 and kFp8E4M3 are
// emulated exactly (quantised and dequantised on store, held in fp32) with scales fixed at a
// layer's first store, i.e. calibrated on the prompt, as static-scale KV quantisation is:
// per_tensor = one scale for all of a layer's keys (and one for its values), per_channel = one per
// channel. Later values beyond the calibrated range saturate.
// Storage grows by doubling up to max_context; nothing is allocated for positions never used.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/ops.h"
#include "kernels/numerics_profile.h"
#include "util/result.h"

namespace fusecheck {

class KvCache {
 public:
  KvCache() = default;
  // kv_dim = num_kv_heads * head_dim.
  KvCache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, int64_t max_context,
          cpu::ActType act, KvFormat format = KvFormat::kSame, KvScale scale = KvScale::kPerTensor);

  int64_t size() const { return size_; }  // positions held
  int64_t max_context() const { return max_context_; }
  cpu::ActType act() const { return act_; }  // the activation type of the path that writes it
  KvFormat format() const { return format_; }
  // Bytes per position over all layers, keys and values.
  int64_t bytes_per_position() const;
  int64_t bytes_allocated() const;

  // Makes room for positions [size, size + n); an error when that would pass max_context.
  Status reserve_more(int64_t n);
  // Stores T positions of one layer from pos0 (within size + reserved): k, v: [T, n_kv_heads *
  // head_dim]. The first store into a layer calibrates its int8/fp8 scales.
  void store(int64_t layer, int64_t pos0, int64_t T, const float* k, const float* v);
  // Positions [0, n) of one kv head as fp32: k_out, v_out: [n, head_dim].
  void load_head(int64_t layer, int64_t kv_head, int64_t n, float* k_out, float* v_out) const;
  // Marks positions [0, n) valid (after every layer stored them).
  void set_size(int64_t n) { size_ = n; }
  void clear() { size_ = 0; }

 private:
  size_t elem_size() const { return storage_ == cpu::ActType::F32 ? 4 : 2; }
  // Quantise-dequantise one side's values in place ([T, kv_dim]) with that side's scales.
  void quantize(int64_t layer, int side, int64_t T, float* x);

  int64_t n_layers_ = 0, n_kv_heads_ = 0, head_dim_ = 0, max_context_ = 0;
  cpu::ActType act_ = cpu::ActType::F32;
  cpu::ActType storage_ = cpu::ActType::F32;
  KvFormat format_ = KvFormat::kSame;
  KvScale scale_kind_ = KvScale::kPerTensor;
  std::vector<std::vector<float>> scales_;  // [n_layers * 2]: [1] or [kv_dim]; empty = uncalibrated
  std::vector<float> qbuf_;                 // [T, kv_dim] scratch for quantisation
  int64_t size_ = 0, capacity_ = 0;
  std::vector<std::vector<unsigned char>> k_, v_;  // per layer: [capacity, kv_dim] of storage_
};

}  // namespace fusecheck
