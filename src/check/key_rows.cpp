#include "check/key_rows.h"

#include <fmt/format.h>

#include <cmath>

namespace fusecheck {

namespace {

// Layers to read: all when they fit the budget, else `n` evenly spaced ones, first and last
// included.
std::vector<int64_t> pick_layers(int64_t layers, uint64_t per_layer, uint64_t budget) {
  const uint64_t fit = per_layer ? budget / per_layer : 0;
  std::vector<int64_t> out;
  if (fit >= uint64_t(layers)) {
    for (int64_t l = 0; l < layers; ++l) out.push_back(l);
  } else if (fit == 1) {
    out.push_back(0);
  } else if (fit > 1) {
    for (uint64_t i = 0; i < fit; ++i)
      out.push_back(int64_t(std::llround(double(i) * double(layers - 1) / double(fit - 1))));
  }
  return out;
}

}  // namespace

Result<KeyRowsRead> read_key_rows(const Checkpoint& ck, const ModelConfig& cfg,
                                  const ArchProfile& arch, const std::string& prefix,
                                  const std::vector<NormGains>& norms, Hasher& fingerprint,
                                  uint64_t budget_bytes) {
  KeyRowsRead out;
  out.info.layers = cfg.num_layers;
  if (arch.qk_scope != QkNormScope::kNone) {
    out.info.note = "not read: the model has q/k norms";
    return out;
  }
  if (!arch.has_decoder || arch.decoder.k_proj.empty()) {
    out.info.note = "not read: the architecture profile names no k_proj tensor";
    return out;
  }
  out.info.tensor = prefix + arch.decoder.k_proj;
  const int64_t rows = cfg.num_kv_heads * cfg.head_dim, cols = cfg.hidden_size;
  const TensorRef* first = ck.find(layer_tensor_name(prefix, arch.decoder.k_proj, 0));
  if (!first ||
      !same_shape(first->info->shape, std::vector<uint64_t>{uint64_t(rows), uint64_t(cols)}) ||
      !dtype_is_float_supported(first->info->dtype)) {
    out.info.note = "not read: k_proj is missing or not [kv_heads*head_dim, hidden] F32/F16/BF16";
    return out;
  }
  const std::vector<int64_t> layers =
      pick_layers(cfg.num_layers, first->info->nbytes, budget_bytes);
  if (layers.empty()) {
    out.info.note =
        fmt::format("not read: one layer's k_proj ({} bytes) exceeds the {} byte budget",
                    first->info->nbytes, budget_bytes);
    return out;
  }
  if (int64_t(layers.size()) < cfg.num_layers)
    out.info.note = fmt::format("{} of {} layers read (evenly spaced): the budget is {} bytes",
                                layers.size(), cfg.num_layers, budget_bytes);
  std::vector<float> w;
  for (int64_t l : layers) {
    const std::string name = layer_tensor_name(prefix, arch.decoder.k_proj, l);
    const TensorRef* ref = ck.find(name);
    if (!ref || !same_shape(ref->info->shape, first->info->shape) ||
        ref->info->dtype != first->info->dtype)
      return make_error("{}: tensor \"{}\" is missing or differs from layer 0's k_proj", ck.dir(),
                        name);
    // The layer's input norm gains scale k_proj's columns (the norm's output feeds it).
    const std::string in_name = layer_tensor_name(prefix, arch.decoder.input_norm, l);
    const NormGains* in = nullptr;
    for (const auto& n : norms)
      if (n.tensor == in_name && n.gains.size() == size_t(cols)) in = &n;
    FC_ASSIGN(raw, ref->file->read_bytes(*ref->info));
    fingerprint.update(name);
    fingerprint.update(raw);
    w.resize(ref->info->numel);
    convert_to_f32(ref->info->dtype, raw.data(), w.size(), w.data());
    KeyRows kr;
    kr.layer = l;
    kr.rms.resize(size_t(rows));
    for (int64_t r = 0; r < rows; ++r) {  // key channel r: sqrt(sum_j (W[r,j] g_in[j])^2)
      double ss = 0;
      const float* row = w.data() + size_t(r) * size_t(cols);
      for (int64_t j = 0; j < cols; ++j) {
        const double x = double(row[j]) * (in ? in->gains[size_t(j)] : 1.0f);
        ss += x * x;
      }
      kr.rms[size_t(r)] = float(std::sqrt(ss));
    }
    for (int64_t h = 0; h < cfg.num_kv_heads; ++h) {  // unit RMS per kv head
      float* head = kr.rms.data() + size_t(h * cfg.head_dim);
      double ss = 0;
      for (int64_t i = 0; i < cfg.head_dim; ++i) ss += double(head[i]) * head[i];
      const double rms = std::sqrt(ss / double(cfg.head_dim));
      for (int64_t i = 0; i < cfg.head_dim; ++i) head[i] = rms > 0 ? float(head[i] / rms) : 1.0f;
    }
    out.rows.push_back(std::move(kr));
    out.info.bytes_read += ref->info->nbytes;
  }
  out.info.layers_read = int64_t(layers.size());
  return out;
}

}  // namespace fusecheck
