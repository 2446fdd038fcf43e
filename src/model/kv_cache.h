// The key/value cache: per layer, keys and values after RoPE for every position so far, in backend
// memory and in the cache's own format (KvStorage, kernels/backend.h):
// - kSame stores the activation type of the path that wrote them (bf16 for a bf16 model's standard
//   path: 2 bytes, lossless, the values are already rounded to it; fp32 for the reference);
// - kFp16 stores fp16 (2 bytes);
// - kInt8 and kFp8E4M3 store 1-byte codes with scales fixed at a layer's first store, i.e.
//   calibrated on the prompt, as static-scale KV quantisation is: per_tensor = one scale for all of
//   a layer's keys (and one for its values), per_channel = one per channel. Later values beyond the
//   calibrated range saturate. Attention dequantises inside its loop, so what it reads is exactly
//   the quantise-dequantise of the value stored.
// Each layer has its own format (a per-layer plan stores int8 where that is safe and bf16 where it
// is not); a uniform cache gives every layer the same one.
// Storage grows by doubling up to max_context (reserve_more, between forward calls); nothing is
// allocated for positions never used.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/backend.h"
#include "kernels/kernel_plan.h"
#include "util/result.h"

namespace fusecheck {

class KvCache {
 public:
  KvCache() = default;
  KvCache(std::shared_ptr<Backend> backend, int64_t n_layers, int64_t n_kv_heads, int64_t head_dim,
          int64_t max_context, ActType act, KvFormat format = KvFormat::kSame,
          KvScale scale = KvScale::kPerTensor);
  // Per layer: formats[l] for layer l ([n_layers]).
  KvCache(std::shared_ptr<Backend> backend, int64_t n_kv_heads, int64_t head_dim,
          int64_t max_context, ActType act, const std::vector<KvLayerFormat>& formats);

  int64_t size() const { return size_; }  // positions held
  int64_t max_context() const { return max_context_; }
  ActType act() const { return act_; }  // the activation type of the path that writes it
  KvFormat format() const { return formats_.empty() ? KvFormat::kSame : formats_[0].format; }
  KvStorage storage() const { return layers_.empty() ? KvStorage::F32 : layers_[0].storage; }
  const std::vector<KvLayerFormat>& formats() const { return formats_; }  // [n_layers]
  // Bytes per position over all layers, keys and values, as stored.
  int64_t bytes_per_position() const;
  // The same for layer l alone.
  int64_t layer_bytes_per_position(int64_t l) const;
  // Bytes held now: the allocated positions plus the scales.
  int64_t resident_bytes() const;

  // Makes room for positions [size, size + n); an error when that would pass max_context.
  Status reserve_more(int64_t n);
  // Layer l as the backend's ops read and write it (valid until the next reserve_more).
  const KvLayer& layer(int64_t l) const { return layers_[static_cast<size_t>(l)]; }
  // Positions [0, n) of one kv head dequantised to fp32 on the host (tests and tools; waits for
  // the backend): k_out, v_out: [n, head_dim].
  void load_head(int64_t layer, int64_t kv_head, int64_t n, float* k_out, float* v_out) const;
  // Marks positions [0, n) valid (after every layer stored them).
  void set_size(int64_t n) { size_ = n; }
  void clear() { size_ = 0; }

 private:
  std::shared_ptr<Backend> backend_;
  int64_t n_layers_ = 0, n_kv_heads_ = 0, head_dim_ = 0, max_context_ = 0;
  ActType act_ = ActType::F32;
  std::vector<KvLayerFormat> formats_;  // [n_layers]
  int64_t size_ = 0, capacity_ = 0;
  std::vector<KvLayer> layers_;  // [n_layers]: pointers into the buffers below
  std::vector<Buffer> k_, v_;    // per layer: [capacity, kv_dim] of the layer's storage
  std::vector<Buffer> scales_;   // per layer (int8/fp8, else empty): [2, 1] or [2, kv_dim]
};

}  // namespace fusecheck
