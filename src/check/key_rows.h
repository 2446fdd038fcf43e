// Key-channel magnitudes from k_proj's rows, for models without q/k norms (Llama, Mistral,
// Qwen2): the case norm gains cannot show, where a trained model's key outlier channels come from
// the projection. Read only within a byte budget, evenly spaced layers when the model is larger,
// and what was read is reported (Analysis::k_proj). docs/ANALYSIS.md, section 4.13.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "analysis/analyze.h"
#include "arch/arch_profile.h"
#include "io/checkpoint.h"
#include "io/model_config.h"
#include "util/hash.h"
#include "util/result.h"

namespace fusecheck {

// The most k_proj bytes one check reads: 16 MiB keeps it within a few milliseconds from the page
// cache (Llama-3.2-1B: 8 of 16 layers; an 8B model: 2 of 32).
constexpr uint64_t kKProjBudgetBytes = 16u << 20;

struct KeyRowsRead {
  std::vector<KeyRows> rows;
  KProjRead info;
};

// Reads nothing (and says why in info.note) when the architecture has q/k norms or names no
// k_proj, or the tensors are not as config.json describes. The bytes read go into `fingerprint`.
// I/O failures are errors.
Result<KeyRowsRead> read_key_rows(const Checkpoint& ck, const ModelConfig& cfg,
                                  const ArchProfile& arch, const std::string& prefix,
                                  const std::vector<NormGains>& norms, Hasher& fingerprint,
                                  uint64_t budget_bytes = kKProjBudgetBytes);

}  // namespace fusecheck
