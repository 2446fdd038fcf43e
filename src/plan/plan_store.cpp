#include "plan/plan_store.h"

#include <filesystem>

#include "check/check.h"
#include "db/database.h"
#include "model/model.h"
#include "plan/plan_search.h"

namespace fusecheck {

std::string store_plan(const std::string& db_path, const PlanFile& p) {
  auto db = Database::open(db_path, DbMode::kReadWrite);
  if (!db) return "plan not stored in the database: " + db.error().message;
  DbKey key;
  key.fingerprint = p.fingerprint, key.kernels = p.profile, key.profile_hash = p.profile_hash;
  key.device = p.device, key.probe_revision = kProbeRevision;
  if (auto st = db->put_plan(key, plan_to_json(p)); !st)
    return "plan not stored in the database: " + st.error().message;
  return "";
}

std::optional<PlanFile> find_stored_plan(const std::string& db_path, const std::string& fingerprint,
                                         const NumericsProfile& profile, const std::string& device,
                                         std::string& note) {
  std::error_code ec;
  if (db_path.empty() || !std::filesystem::exists(db_path, ec)) return std::nullopt;
  auto db = Database::open(db_path, DbMode::kReadOnly);
  if (!db) {
    note = "database not used: " + db.error().message;
    return std::nullopt;
  }
  const DbKey key = current_key(fingerprint, profile, device);
  auto text = db->get_plan(key);
  if (!text) {
    note = "stored plan not used: " + text.error().message;
    return std::nullopt;
  }
  if (!text->has_value()) return std::nullopt;
  auto plan = plan_from_json(**text, db_path + " (stored plan)");
  if (!plan) {
    note = "stored plan not used: " + plan.error().message;
    return std::nullopt;
  }
  if (plan->fingerprint != fingerprint) return std::nullopt;
  return std::move(*plan);
}

Result<KernelPlan> plan_for_model(const Model& m, const std::string& path,
                                  std::string fingerprint) {
  FC_ASSIGN(p, read_plan_file(path));
  if (fingerprint.empty()) {
    CheckOptions co;
    co.kernels = "generic", co.use_cache = false;  // the fingerprint does not depend on it
    FC_ASSIGN(check, check_checkpoint(m.checkpoint(), co));
    fingerprint = check.fingerprint;
  }
  FC_TRY(check_plan_matches(p, fingerprint, m.config().num_layers, path));
  return runnable_plan(p, path);
}

}  // namespace fusecheck
