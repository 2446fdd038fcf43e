// Which kernels the engine runs: per layer and per kernel group, fused or not, plus the KV-cache
// format and the attention accumulator. Built from a numerics profile (data/kernels.json), the
// same data the static checker reads, so the check judges exactly what runs, or from a per-layer
// plan (src/plan, `fusecheck plan`), which fuses some layers and groups and not others and stores
// each layer's keys and values in its own format.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/dot_choice.h"
#include "kernels/numerics_profile.h"

namespace fusecheck {

// How one layer's keys and values are stored (kv_cache.h).
struct KvLayerFormat {
  KvFormat format = KvFormat::kSame;
  KvScale scale = KvScale::kPerTensor;
  bool operator==(const KvLayerFormat&) const = default;
};

struct LayerPlan {
  std::array<bool, kFusedGroupCount> fused{};  // indexed by FusedGroup
  KvLayerFormat kv;                            // this layer's KV-cache format
  bool on(FusedGroup g) const { return fused[static_cast<size_t>(g)]; }
};

struct KernelPlan {
  std::string profile = "standard";
  std::vector<LayerPlan> layers;  // [n_layers]
  // The final norm fuses the last residual add when the last layer fuses add_rmsnorm.
  // The profile's KV format (what a uniform plan stores in every layer; layers[l].kv decides).
  KvFormat kv_format = KvFormat::kSame;
  KvScale kv_scale = KvScale::kPerTensor;
  bool fp16_accumulation = false;  // attention q.k accumulated in fp16
  // The projections' dot product (--dot): the contract, or the bf16-pair dot on the model-dtype
  // path of a bf16 checkpoint. The fp32 reference path always runs the contract.
  DotChoice dot = DotChoice::kContract;

  // The unfused path: the oracle every fused kernel is compared with.
  static KernelPlan standard(int64_t n_layers);
  static KernelPlan from_profile(const NumericsProfile& p, int64_t n_layers);
  // Whether anything differs from the standard path (a fused group, a lossy KV format or the fp16
  // accumulator): `--kernels standard` fuses nothing, and the CLI says so.
  bool any_fused() const;
  // Each layer's KV format: [n_layers].
  std::vector<KvLayerFormat> kv_formats() const;
  bool fuses(int64_t layer, FusedGroup g) const {
    return layer >= 0 && layer < static_cast<int64_t>(layers.size()) &&
           layers[static_cast<size_t>(layer)].on(g);
  }
};

}  // namespace fusecheck
