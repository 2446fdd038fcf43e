// A per-layer kernel plan (`fusecheck plan`, JSON schema "fusecheck.plan/1", docs/JSON_SCHEMA.md):
// for one checkpoint (its fingerprint) and one kernel profile, which of the profile's fused groups
// run in each layer and how each layer's KV cache is stored, with the probe's measurement of the
// whole plan against its budget. The engine runs it through KernelPlan (kernels/kernel_plan.h).
// Plan files are untrusted input: plan_from_json validates every field and only parses.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/kernel_plan.h"
#include "kernels/numerics_profile.h"
#include "util/result.h"

namespace fusecheck {

constexpr const char* kPlanSchema = "fusecheck.plan/1";

struct PlanBudget {
  double kl = 1e-3;          // mean KL the plan may add to the standard path's, against fp32 (nats)
  double top1_points = 1.0;  // top-1 agreement with fp32 it may lose against the standard path
};

// One measurement of a kernel plan against the probe's fp32 reference.
struct PlanMeasure {
  double added_kl = 0;          // KL(fp32 || plan) - KL(fp32 || standard), mean over positions
  double kl_vs_fp32 = 0;        // KL(fp32 || plan)
  double standard_kl = 0;       // KL(fp32 || standard)
  double top1 = 0;              // agreement of the plan's argmax with fp32's (fraction)
  double standard_top1 = 0;     // the standard path's
  double top1_loss_points = 0;  // 100 * (standard_top1 - top1)
  int64_t positions = 0;
  bool within(const PlanBudget& b) const {
    return added_kl <= b.kl && top1_loss_points <= b.top1_points;
  }
};

// Fraction of the profile's fused work the plan keeps, counted three ways (plan_work.cpp).
struct PlanKept {
  double ops = 0, bytes = 0, launches = 0;
  int64_t groups = 0, groups_total = 0;  // (layer, group) pairs fused / in the profile
};

// One row of the sensitivity table: a group fused alone in one layer, or one layer's KV format.
struct Sensitivity {
  int64_t layer = 0;
  std::string what;  // a fused group's name, or "kv:FORMAT[:per_channel]"
  double added_kl = 0, top1_loss_points = 0;
  double shadow = 0;  // the layer's shadow error (relative) with it; 0 for KV rows
};

struct PlanFile {
  std::string fingerprint;   // check_model's fingerprint of the checkpoint
  std::string model_path;    // informational
  std::string profile;       // kernel profile name
  std::string profile_hash;  // DbKey::profile_hash of that profile
  std::string device = "cpu";
  PlanBudget budget;
  KernelPlan plan;  // layers: the fused groups and the KV format of each
  PlanMeasure measured, full_profile;
  PlanKept kept;
  int64_t kv_bytes_per_token = 0, profile_kv_bytes_per_token = 0, standard_kv_bytes_per_token = 0;
  std::vector<Sensitivity> sensitivity;
};

// "int8", "int8:per_channel", "same", ... for a layer's KV format; and back.
std::string kv_layer_format_name(const KvLayerFormat& f);
Result<KvLayerFormat> parse_kv_layer_format(const std::string& s);

std::string plan_to_json(const PlanFile& p);
// `source` names the file in errors. n_layers < 0: any count.
Result<PlanFile> plan_from_json(std::string_view text, const std::string& source);
// Reads and validates a plan file; errors name the file.
Result<PlanFile> read_plan_file(const std::string& path);
// A plan for another checkpoint is refused: the error names the file and both fingerprints.
Status check_plan_matches(const PlanFile& p, const std::string& fingerprint, int64_t n_layers,
                          const std::string& path);

}  // namespace fusecheck
