// The checker's C++ API for engines: check_model(path, options) -> CheckResult.
// Reads only safetensors headers and norm tensors, so a 0.6B and a 235B model cost the same.
#pragma once

#include <optional>
#include <string>

#include "analysis/analyze.h"
#include "check/score.h"
#include "check/thresholds.h"
#include "io/model_config.h"
#include "kernels/numerics_profile.h"
#include "util/result.h"

namespace fusecheck {

constexpr const char* kCheckerVersion = FUSECHECK_VERSION;
// Bumped whenever the analysis or scoring changes results, so cached results from an older build of
// the same version are never served.
// 4: the model dtype's floor (floor_key_loss) in the rules; 5: the fp16 accumulator's loss against
// that floor (floor_accumulation_loss, fused-fp16acc's rule)
constexpr int kAnalysisRevision = 5;
// Environment variable with which the CLI forces the verdict, for testing engines' fallback
// paths: FUSECHECK_FORCE_STATUS=COMPATIBLE|WARNING|INCOMPATIBLE. The library never reads it; the
// CLI passes it down as CheckOptions::force_verdict.
constexpr const char* kForceStatusEnv = "FUSECHECK_FORCE_STATUS";

struct CheckOptions {
  std::string kernels = "generic";       // numerics profile name (data/kernels.json)
  std::string thresholds_file;           // optional overrides of data/thresholds.json
  std::optional<Thresholds> thresholds;  // when set, used instead of the file/defaults (flags)
  std::string arch_profiles_file;        // optional replacement for data/architectures.json
  std::string kernel_profiles_file;      // optional replacement for data/kernels.json
  bool use_cache = true;
  std::string cache_dir;                 // "" = $XDG_CACHE_HOME/fusecheck or ~/.cache/fusecheck
  std::optional<Verdict> force_verdict;  // testing override (--force-status, kForceStatusEnv)
  int threads = 1;  // threads that parse a sharded checkpoint's headers and compute a large
                    // model's gain statistics (the CLI: the machine's)
};

struct CheckResult {
  std::string schema = "fusecheck.check/1";
  std::string checker_version = kCheckerVersion;
  std::string model_path;
  std::string architecture;  // profile name, e.g. "qwen3"
  std::string model_type;    // config's model_type
  std::string gain_convention;
  ModelConfig config;
  NumericsProfile kernels;
  Thresholds thresholds;
  Analysis analysis;
  Score score;
  Verdict verdict = Verdict::kCompatible;  // score.verdict unless overridden
  bool overridden = false;
  bool from_cache = false;
  std::string fingerprint;  // hex, of headers, norm bytes, file sizes and config
  std::string cache_note;   // why the cache was not used, if it was not ("" when fine)
};

Result<CheckResult> check_model(const std::string& model_dir, const CheckOptions& options = {});
// The same on a checkpoint already open (the engine's, at load time): its headers are not reread.
class Checkpoint;
Result<CheckResult> check_checkpoint(const Checkpoint& ck, const CheckOptions& options = {});

// The load-time warning for engines that fall back to standard kernels; `measured`: the decision
// came from a cached probe measurement, not from the normalization weights.
std::string fallback_warning(const std::string& model_dir, bool measured = false);

Result<Verdict> parse_verdict(std::string_view name);

}  // namespace fusecheck
