// The load-time decision for a checkpoint directory, before any weight is read: what a loader
// calls first (the Python package's decide_kernels, model_loader_with_compatibility.py). It follows
// decide_kernels (kernel_select.h) rule for rule: forced > measured (a cached probe) > static.
// Strict mode is reported, not raised, so a caller can tell "cannot check" from "incompatible".
#pragma once

#include <optional>
#include <string>

#include "engine/kernel_select.h"
#include "util/result.h"

namespace fusecheck {

struct DirDecision {
  KernelDecision decision;         // plan: empty when the check could not read the checkpoint
  std::optional<Verdict> verdict;  // the verdict the decision rests on (measured over static)
  std::string source;              // "static" | "probe" | "forced"; where the verdict came from
  std::string check_error;         // the checker's one-line error when it could not read the model
  bool strict_refusal = false;     // req.strict and the model is INCOMPATIBLE: do not load it
};

// Errors: an unknown kernel profile. A checkpoint the checker cannot read is not an error here: the
// decision falls back (or is forced) and check_error says why. force_verdict: the check's testing
// override (CheckOptions::force_verdict), for callers that read kForceStatusEnv themselves.
// device: the backend the caller will load on ("cpu" or "cuda"): stored plans and measurements
// are looked up for it, as the engine does on that device.
Result<DirDecision> decide_kernels_for_dir(const std::string& model_dir, const KernelRequest& req,
                                           std::optional<Verdict> force_verdict = std::nullopt,
                                           const std::string& device = "cpu");

}  // namespace fusecheck
