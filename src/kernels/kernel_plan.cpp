#include "kernels/kernel_plan.h"

namespace fusecheck {

KernelPlan KernelPlan::standard(int64_t n_layers) {
  KernelPlan p;
  p.layers.resize(static_cast<size_t>(n_layers));
  return p;
}

KernelPlan KernelPlan::from_profile(const NumericsProfile& prof, int64_t n_layers) {
  KernelPlan p = standard(n_layers);
  p.profile = prof.name;
  for (auto& l : p.layers) {
    for (FusedGroup g : prof.fusion) l.fused[static_cast<size_t>(g)] = true;
    l.kv = {prof.kv_format, prof.kv_scale};
  }
  p.kv_format = prof.kv_format;
  p.kv_scale = prof.kv_scale;
  // The only narrower accumulator the profiles describe is fp16 (unit roundoff 2^-11).
  p.fp16_accumulation = prof.accumulation_unit_roundoff > 0;
  return p;
}

bool KernelPlan::any_fused() const {
  if (kv_format != KvFormat::kSame || fp16_accumulation) return true;
  for (const auto& l : layers) {
    if (l.kv.format != KvFormat::kSame) return true;
    for (bool f : l.fused)
      if (f) return true;
  }
  return false;
}

std::vector<KvLayerFormat> KernelPlan::kv_formats() const {
  std::vector<KvLayerFormat> out;
  for (const auto& l : layers) out.push_back(l.kv);
  return out;
}

}  // namespace fusecheck
