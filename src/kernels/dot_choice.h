// The dot product the linear projections run (data/kernels.json "dots", docs/NUMERICS.md): the
// 32-lane contract (the default: bit-identical on every ISA) or the opt-in bf16-pair dot
// (activations rounded to bf16, vdpbf16ps on AVX512-BF16; last bits differ between ISAs). Chosen
// once at the CLI boundary (--dot) and carried in the KernelPlan.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace fusecheck {

enum class DotChoice : uint8_t { kContract, kBf16Pairs };

inline std::string_view dot_choice_name(DotChoice d) {
  return d == DotChoice::kBf16Pairs ? "bf16-pairs" : "contract";
}
inline std::optional<DotChoice> parse_dot_choice(std::string_view name) {
  if (name == "contract") return DotChoice::kContract;
  if (name == "bf16-pairs") return DotChoice::kBf16Pairs;
  return std::nullopt;
}

}  // namespace fusecheck
