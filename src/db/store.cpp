#include "db/store.h"

#include "check/result_json.h"
#include "model/model.h"
#include "probe/probe_report.h"

namespace fusecheck {

DbRecord local_record(const CheckResult& check, const ProbeResult* probe, const ModelIdentity& id,
                      const std::string& device) {
  DbRecord r;
  r.key = current_key(check.fingerprint, check.kernels, device);
  r.model_name = id.name;
  r.model_revision = id.revision;
  if (!check.overridden) {  // a forced verdict is a test of the caller, not a result
    nlohmann::json j = result_to_json(check);
    j["model_path"] = "";  // a local path means nothing to whoever imports the record
    r.static_result = std::move(j);
  }
  if (probe) r.probe = probe_to_json(*probe);
  r.tool_version = kCheckerVersion;
  r.date = utc_now_iso8601();
  r.source = "local";
  return r;
}

std::string record_locally(const std::string& db_path, const DbRecord& r) {
  if (!r.static_result && !r.probe) return "";
  auto db = Database::open(db_path, DbMode::kReadWrite);
  if (!db) return "not recorded in the database: " + db.error().message;
  if (auto st = db->put_local(r); !st) return "not recorded in the database: " + st.error().message;
  return "";
}

Result<MeasuredProbe> probe_with_store(const std::string& model_dir, const CheckResult& check,
                                       const std::string& db_path, const ModelIdentity& id) {
  MeasuredProbe out;
  if (!db_path.empty()) {
    auto db = Database::open(db_path, DbMode::kReadOnly);
    if (db) {
      auto m = find_measurement(*db, check.fingerprint, check.kernels);
      if (m && m->has_value())
        if (auto r = probe_from_json(*(*m)->record.probe)) {
          out.result = std::move(r).value();
          out.origin = (*m)->origin();
          out.source = (*m)->record.source;
          out.from_store = true;
          return out;
        }
      if (!m) out.note = "database not used: " + m.error().message;
    }
  }
  FC_ASSIGN(model, Model::load(model_dir));
  FC_ASSIGN(inputs, calibration_inputs(model, 64, ""));
  ProbeOptions opt;
  opt.profile = check.kernels;
  opt.inputs = std::move(inputs);
  FC_ASSIGN(r, run_probe(model, opt));
  out.result = std::move(r);
  out.source = "local";
  if (!db_path.empty())
    if (auto note = record_locally(db_path, local_record(check, &out.result, id)); !note.empty())
      out.note = note;
  return out;
}

Result<DbRecord> add_checkpoint(const std::string& db_path, const std::string& model_dir,
                                const std::string& kernels, bool probe, const ModelIdentity& id) {
  CheckOptions co;
  co.kernels = kernels;
  FC_ASSIGN(check, check_model(model_dir, co));
  std::optional<ProbeResult> measured;
  if (probe) {
    FC_ASSIGN(p, probe_with_store(model_dir, check, db_path, id));
    if (!p.note.empty()) return make_error("{}", p.note);
    // A stored measurement stays; the static result and the name update.
    if (!p.from_store) measured = std::move(p.result);
  }
  DbRecord rec = local_record(check, measured ? &*measured : nullptr, id);
  {
    FC_ASSIGN(db, Database::open(db_path));
    FC_TRY(db.put_local(rec));
  }
  FC_ASSIGN(db, Database::open(db_path, DbMode::kReadOnly));
  FC_ASSIGN(stored, db.get(rec.key));
  if (!stored) return make_error("{}: the record was not found after writing it", db_path);
  return std::move(*stored);
}

}  // namespace fusecheck
