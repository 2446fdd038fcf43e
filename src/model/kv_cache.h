// The key/value cache: per layer, keys and values after RoPE for every position so far, stored in
// the activation type of the path that wrote them (bf16 for a bf16 model's standard path, fp32 for
// the reference). Those values are already rounded to that type, so storing them is lossless.
// Storage grows by doubling up to max_context; nothing is allocated for positions never used.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/ops.h"
#include "util/result.h"

namespace fusecheck {

class KvCache {
 public:
  KvCache() = default;
  // kv_dim = num_kv_heads * head_dim.
  KvCache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, int64_t max_context,
          cpu::ActType storage);

  int64_t size() const { return size_; }  // positions held
  int64_t max_context() const { return max_context_; }
  cpu::ActType storage() const { return storage_; }
  // Bytes per position over all layers, keys and values.
  int64_t bytes_per_position() const;
  int64_t bytes_allocated() const;

  // Makes room for positions [size, size + n); an error when that would pass max_context.
  Status reserve_more(int64_t n);
  // Stores k, v ([n_kv_heads*head_dim] each) of one layer at position `pos` (< size + reserved).
  void store(int64_t layer, int64_t pos, const float* k, const float* v);
  // Positions [0, n) of one kv head as fp32: k_out, v_out: [n, head_dim].
  void load_head(int64_t layer, int64_t kv_head, int64_t n, float* k_out, float* v_out) const;
  // Marks positions [0, n) valid (after every layer stored them).
  void set_size(int64_t n) { size_ = n; }
  void clear() { size_ = 0; }

 private:
  size_t elem_size() const { return storage_ == cpu::ActType::F32 ? 4 : 2; }

  int64_t n_layers_ = 0, n_kv_heads_ = 0, head_dim_ = 0, max_context_ = 0;
  cpu::ActType storage_ = cpu::ActType::F32;
  int64_t size_ = 0, capacity_ = 0;
  std::vector<std::vector<unsigned char>> k_, v_;  // per layer: [capacity, kv_dim] of storage_
};

}  // namespace fusecheck
