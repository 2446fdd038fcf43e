// The per-layer plan search (`fusecheck plan`): measure with the probe how much each layer x
// kernel group of a profile, fused alone, and each layer's KV format, adds to the standard path's
// divergence from fp32; choose greedily by that sensitivity the largest set whose summed cost fits
// the budget; then measure the whole plan and, where it does not fit, bisect the greedy order for
// the longest prefix that does and drop the unit that broke it (as ORT's mixed-precision tool
// bisects nodes), until the measured plan is within budget. The all-standard plan always is.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/model.h"
#include "plan/plan.h"
#include "probe/probe.h"

namespace fusecheck {

struct PlanSearchOptions {
  NumericsProfile profile;
  PlanBudget budget;
  std::vector<std::vector<int32_t>> inputs;  // calibration sequences (calibration_inputs)
  int max_rounds = 8;                        // bisect-and-drop rounds at most
  std::function<void(double, const std::string&)> progress;
};

struct PlanSearchResult {
  KernelPlan plan;
  PlanMeasure measured;      // the whole plan, measured
  PlanMeasure full_profile;  // every group fused in every layer, the profile's KV format
  std::vector<Sensitivity> sensitivity;  // empty when the full profile fits the budget
  int measurements = 0;                  // plans measured by the search after the sensitivities
};

Result<PlanSearchResult> search_plan(const Model& m, const PlanSearchOptions& opt);

// The KV formats a layer may take under a profile, most compact first, ending with kSame (as the
// standard path stores keys): e.g. int8 per tensor, int8 per channel, same.
std::vector<KvLayerFormat> kv_candidates(const NumericsProfile& p);

// A plan's measurement in PlanMeasure's terms.
PlanMeasure to_measure(const PlanStats& s, const ProbeBaseline& b);

// The fraction of the profile's fused work that `plan` keeps (per token; docs/JSON_SCHEMA.md).
PlanKept kept_work(const Model& m, const NumericsProfile& profile, const KernelPlan& plan,
                   int64_t context);

// The kernel plan a plan file runs: its profile's fp16 accumulator setting and KV summary, its
// groups checked against the profile's. Errors name `path`.
Result<KernelPlan> runnable_plan(const PlanFile& p, const std::string& path);

}  // namespace fusecheck
