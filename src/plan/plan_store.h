// Plans in the compatibility database (src/db): `fusecheck plan` stores one per checkpoint,
// profile and device, and the load-time decision (engine/kernel_select.h) looks it up when the
// full profile is INCOMPATIBLE.
#pragma once

#include <optional>
#include <string>

#include "plan/plan.h"

namespace fusecheck {

// Stores the plan; "" when stored, else a one-line note (read-only, damaged, ...).
std::string store_plan(const std::string& db_path, const PlanFile& p);

// The stored plan for this checkpoint, profile and device under this build's probe revision, or
// nullopt (with a note when the database is there but unusable or the plan does not parse).
std::optional<PlanFile> find_stored_plan(const std::string& db_path, const std::string& fingerprint,
                                         const NumericsProfile& profile, const std::string& device,
                                         std::string& note);

class Model;
// `--plan FILE` for a loaded model: the file read and validated, refused when it was made for
// another checkpoint (fingerprint) or layer count, and turned into the kernel plan to run.
// fingerprint: the model's, when the caller has it ("" = computed here from the open checkpoint).
Result<KernelPlan> plan_for_model(const Model& m, const std::string& path,
                                  std::string fingerprint = "");

}  // namespace fusecheck
