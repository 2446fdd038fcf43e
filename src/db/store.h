// What the check, the probe and the load-time decision do with the database: record a local
// result, and find or take a measurement. The one place a stored measurement is looked up
// (find_measurement in db/database.h) sits behind these.
#pragma once

#include <optional>
#include <string>

#include "check/check.h"
#include "db/database.h"
#include "db/model_id.h"
#include "probe/probe.h"
#include "util/result.h"

namespace fusecheck {

// A local record of this build for a check result, with a measurement when given.
DbRecord local_record(const CheckResult& check, const ProbeResult* probe, const ModelIdentity& id,
                      const std::string& device = "cpu");

// Stores a local record; "" when stored, else a one-line note (read-only, damaged, ...).
std::string record_locally(const std::string& db_path, const DbRecord& r);

struct MeasuredProbe {
  ProbeResult result;
  std::string origin = "probe";  // "probe" (measured here, now or earlier) or "database" (imported)
  bool from_store = false;       // found in the database, not measured now
  std::string source;            // the record's source ("local", "imported from FILE")
  std::string note;              // why the database was not used or written, if it was not
};
// The stored measurement for this checkpoint and profile, or a fresh probe with the default
// calibration, stored with the static result. db_path "" = no database.
Result<MeasuredProbe> probe_with_store(const std::string& model_dir, const CheckResult& check,
                                       const std::string& db_path, const ModelIdentity& id);

// `db add`: checks `model_dir` for `kernels` (and measures it with `probe`, unless the database
// already holds a measurement, which stays), stores the local record and returns it as stored.
// Errors: the checkpoint cannot be checked or measured, or the database cannot be written.
Result<DbRecord> add_checkpoint(const std::string& db_path, const std::string& model_dir,
                                const std::string& kernels, bool probe, const ModelIdentity& id);

}  // namespace fusecheck
