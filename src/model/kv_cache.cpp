#include "model/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/quant.h"
#include "util/half.h"

namespace fusecheck {

namespace {

KvStorage storage_for(KvFormat f, ActType act) {
  switch (f) {
    case KvFormat::kSame:
      return act == ActType::BF16  ? KvStorage::BF16
             : act == ActType::F16 ? KvStorage::F16
                                   : KvStorage::F32;
    case KvFormat::kFp16:
      return KvStorage::F16;
    case KvFormat::kInt8:
      return KvStorage::Int8;
    case KvFormat::kFp8E4M3:
      return KvStorage::Fp8E4M3;
  }
  return KvStorage::F32;
}

bool quantised(KvStorage s) {
  return s == KvStorage::Int8 || s == KvStorage::Fp8E4M3;
}

}  // namespace

KvCache::KvCache(std::shared_ptr<Backend> backend, int64_t n_layers, int64_t n_kv_heads,
                 int64_t head_dim, int64_t max_context, ActType act, KvFormat format, KvScale scale)
    : KvCache(std::move(backend), n_kv_heads, head_dim, max_context, act,
              std::vector<KvLayerFormat>(static_cast<size_t>(n_layers), {format, scale})) {}

KvCache::KvCache(std::shared_ptr<Backend> backend, int64_t n_kv_heads, int64_t head_dim,
                 int64_t max_context, ActType act, const std::vector<KvLayerFormat>& formats)
    : backend_(std::move(backend)),
      n_layers_(static_cast<int64_t>(formats.size())),
      n_kv_heads_(n_kv_heads),
      head_dim_(head_dim),
      max_context_(max_context),
      act_(act),
      formats_(formats),
      layers_(formats.size()),
      k_(formats.size()),
      v_(formats.size()),
      scales_(formats.size()) {
  const int64_t kv_dim = n_kv_heads * head_dim;
  for (size_t l = 0; l < formats.size(); ++l) {
    KvLayer& kl = layers_[l];
    kl.storage = storage_for(formats[l].format, act);
    kl.scale_kind = formats[l].scale;
    kl.n_kv_heads = n_kv_heads;
    kl.head_dim = head_dim;
    if (quantised(kl.storage)) {
      const int64_t n_scales = kl.scale_kind == KvScale::kPerChannel ? kv_dim : 1;
      // Zero-filled: not calibrated yet (the first kv_append sets them).
      scales_[l] = backend_->alloc(static_cast<size_t>(2 * n_scales) * sizeof(float));
      kl.k_scale = scales_[l].f32();
      kl.v_scale = kl.k_scale + n_scales;
    }
  }
}

int64_t KvCache::layer_bytes_per_position(int64_t l) const {
  return 2 * n_kv_heads_ * head_dim_ *
         static_cast<int64_t>(kv_storage_bytes(layers_[static_cast<size_t>(l)].storage));
}

int64_t KvCache::bytes_per_position() const {
  int64_t n = 0;
  for (int64_t l = 0; l < n_layers_; ++l) n += layer_bytes_per_position(l);
  return n;
}

int64_t KvCache::resident_bytes() const {
  int64_t n = capacity_ * bytes_per_position();
  for (const auto& s : scales_) n += s ? static_cast<int64_t>(s.bytes()) : 0;
  return n;
}

Status KvCache::reserve_more(int64_t n) {
  const int64_t need = size_ + n;
  if (need > max_context_)
    return make_error(
        "context of {} tokens exceeds --max-context {}; hint: raise --max-context or shorten the "
        "prompt",
        need, max_context_);
  if (need <= capacity_) return ok_status();
  const int64_t cap = std::min(max_context_, std::max(need, 2 * capacity_));
  // Between forward calls only: the held rows move to the larger buffers through the host, which
  // every backend supports (and a captured decode step is replayed only within one capacity).
  for (int64_t l = 0; l < n_layers_; ++l) {
    const size_t row = static_cast<size_t>(layer_bytes_per_position(l) / 2);
    std::vector<unsigned char> held(static_cast<size_t>(size_) * row);
    for (auto* side : {&k_, &v_}) {
      Buffer& old = (*side)[static_cast<size_t>(l)];
      Buffer grown = backend_->alloc(static_cast<size_t>(cap) * row);
      if (old && !held.empty()) {
        backend_->download(held.data(), old, 0, held.size());
        backend_->upload(grown, 0, held.data(), held.size());
      }
      old = std::move(grown);
    }
  }
  for (int64_t l = 0; l < n_layers_; ++l) {
    KvLayer& kl = layers_[static_cast<size_t>(l)];
    kl.capacity = cap;
    kl.k = k_[static_cast<size_t>(l)].data();
    kl.v = v_[static_cast<size_t>(l)].data();
  }
  capacity_ = cap;
  return ok_status();
}

void KvCache::load_head(int64_t layer, int64_t kv_head, int64_t n, float* k_out,
                        float* v_out) const {
  const size_t kv_dim = static_cast<size_t>(n_kv_heads_ * head_dim_);
  const size_t hd = static_cast<size_t>(head_dim_);
  const KvLayer& kl = layers_[static_cast<size_t>(layer)];
  const size_t es = kv_storage_bytes(kl.storage);
  std::vector<float> sc(2 * kv_dim, 1.0f);
  if (quantised(kl.storage)) {
    const size_t ns = kl.scale_kind == KvScale::kPerChannel ? kv_dim : 1;
    backend_->download(sc.data(), scales_[static_cast<size_t>(layer)], 0, 2 * ns * sizeof(float));
    if (ns == 1) sc.assign({sc[0], sc[1]});
  }
  std::vector<unsigned char> rows(static_cast<size_t>(n) * kv_dim * es);
  for (int side = 0; side < 2; ++side) {
    const Buffer& buf = (side == 0 ? k_ : v_)[static_cast<size_t>(layer)];
    if (!rows.empty()) backend_->download(rows.data(), buf, 0, rows.size());
    float* out = side == 0 ? k_out : v_out;
    for (int64_t p = 0; p < n; ++p)
      for (size_t i = 0; i < hd; ++i) {
        const size_t c = static_cast<size_t>(kv_head) * hd + i;
        const unsigned char* src = rows.data() + (static_cast<size_t>(p) * kv_dim + c) * es;
        const size_t ns = sc.size() == 2 ? 1 : kv_dim;
        const float s = sc[static_cast<size_t>(side) * ns + (ns == 1 ? 0 : c)];
        uint16_t h = 0;
        float f = 0;
        switch (kl.storage) {
          case KvStorage::F32:
            std::memcpy(&f, src, 4);
            break;
          case KvStorage::BF16:
            std::memcpy(&h, src, 2);
            f = bf16_to_f32(h);
            break;
          case KvStorage::F16:
            std::memcpy(&h, src, 2);
            f = f16_to_f32(h);
            break;
          case KvStorage::Int8:
            f = static_cast<float>(static_cast<int8_t>(*src)) * s;
            break;
          case KvStorage::Fp8E4M3:
            f = fp8_e4m3_decode(*src) * s;
            break;
        }
        out[static_cast<size_t>(p) * hd + i] = f;
      }
  }
}

}  // namespace fusecheck
