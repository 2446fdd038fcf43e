// Numerics profiles of kernel sets (data/kernels.json): where a kernel set rounds differently from
// the standard path. The checker reads these to judge a model for a specific kernel set; the
// engine's kernels are documented against the same names (`--kernels NAME`).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace fusecheck {

enum class KvFormat { kSame, kFp16, kInt8, kFp8E4M3 };  // kSame: as the standard path stores keys
enum class KvScale { kPerTensor, kPerChannel };

// The engine's fused kernel groups (docs/NUMERICS.md lists each one's rounding points).
enum class FusedGroup : uint8_t { kAddRmsnorm, kRmsnormQkv, kQkNormRope, kAttention, kGateUpSilu };
constexpr int kFusedGroupCount = 5;
std::string_view fused_group_name(FusedGroup g);

// How the static screen's verdict is adjusted for one profile, fitted to measurements
// (docs/VALIDATION.md). 0 / empty = no adjustment. Verdicts are 0 COMPATIBLE, 1 WARNING,
// 2 INCOMPATIBLE (check/score.h's Verdict).
struct StaticRules {
  double incompatible_above_amplification = 0;   // predicted amplification above it: INCOMPATIBLE
  double warning_above_amplification = 0;        // above it: at least WARNING
  double incompatible_above_key_loss = 0;        // Analysis::key_cache_loss above it: INCOMPATIBLE
  double warning_above_key_loss = 0;             // above it: at least WARNING
  double incompatible_above_depth_key_loss = 0;  // Analysis::depth_key_loss above it
  double warning_above_depth_key_loss = 0;
  double warning_above_floor_key_loss = 0;  // Analysis::floor_key_loss above it: WARNING
  double warning_above_rounding = 0;        // Analysis::rounding_amplification above it: WARNING
  double warning_above_floor_accumulation = 0;  // Analysis::floor_accumulation_loss: WARNING
  // The best verdict when the model has no q/k norms and no k_proj rows were read.
  int best_without_qk_norm = 0;
  int worst = 2;  // the worst verdict the score alone can give (errors still force 2)
};

struct NumericsProfile {
  std::string name;
  std::string description;
  double activation_unit_roundoff = 0;  // rounding of q/k where fusion moves it; 0 = none moves
  KvFormat kv_format = KvFormat::kSame;
  KvScale kv_scale = KvScale::kPerTensor;
  double accumulation_unit_roundoff = 0;  // attention dot-product accumulator; 0 = fp32
  std::vector<FusedGroup> fusion;         // the kernel groups the engine fuses; empty = standard
  StaticRules static_rules;
  // Lossless profiles only move rounding points; lossy ones also narrow the KV cache or the
  // accumulator. The probe judges the two kinds differently (docs/VALIDATION.md).
  bool lossy() const { return kv_format != KvFormat::kSame || accumulation_unit_roundoff > 0; }
};

// One dot-product choice of the "dots" table (--dot NAME; kernels/dot_choice.h runs it).
struct DotSpec {
  std::string name, description, isa, rounds;
  std::vector<std::string> weights;  // weight dtypes it runs on: "bf16", "f16", "f32"
  bool bit_identical_across_isas = true;
};

class NumericsRegistry {
 public:
  static Result<NumericsRegistry> parse(std::string_view json_text, const std::string& source);
  // The built-in data/kernels.json, or `file` when non-empty.
  static Result<NumericsRegistry> load(const std::string& file);
  Result<NumericsProfile> find(const std::string& name) const;
  const std::vector<NumericsProfile>& profiles() const { return profiles_; }
  // The "dots" entry named `name`; the error lists the known ones.
  Result<DotSpec> find_dot(const std::string& name) const;
  const std::vector<DotSpec>& dots() const { return dots_; }

 private:
  std::vector<NumericsProfile> profiles_;
  std::vector<DotSpec> dots_;
};

std::string_view kv_format_name(KvFormat f);

}  // namespace fusecheck
