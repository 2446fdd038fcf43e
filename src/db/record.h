// One compatibility record: what the database stores for a checkpoint under one kernel profile on
// one device/backend, and its exchange format (JSON, schema "fusecheck.db/1", one per line in an
// export). Records from files are untrusted: record_from_json validates every field and never
// does anything but parse.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "kernels/numerics_profile.h"
#include "util/result.h"

namespace fusecheck {

constexpr const char* kDbRecordSchema = "fusecheck.db/1";

// Everything a verdict depends on. An edited profile file is another profile_hash, and results of
// an older analysis or probe revision are other keys (kept, but not served).
struct DbKey {
  std::string fingerprint;     // check_model's fingerprint (32 hex digits)
  std::string kernels;         // kernel profile name
  std::string profile_hash;    // hash of the profile's contents (numerics_to_json)
  std::string device = "cpu";  // the device/backend a measurement ran on
  int analysis_revision = 0;
  int probe_revision = 0;
  bool operator==(const DbKey&) const = default;
};
// The key for a checkpoint and profile under this build's revisions.
DbKey current_key(const std::string& fingerprint, const NumericsProfile& profile,
                  const std::string& device = "cpu");

struct DbRecord {
  DbKey key;
  std::string model_name;                       // "Qwen/Qwen3-0.6B", or "" when unknown
  std::string model_revision;                   // HF snapshot revision, or ""
  std::optional<nlohmann::json> static_result;  // fusecheck.check/1
  std::optional<nlohmann::json> probe;          // fusecheck.probe/1
  std::string tool_version;                     // fusecheck version that produced it
  std::string date;                             // ISO 8601 UTC, "2026-12-01T09:00:00Z"
  std::string source = "local";                 // "local" or "imported from FILE"

  bool is_local() const { return source == "local"; }
  std::string static_verdict() const;         // "" without a static result
  std::string measured_verdict() const;       // "" without a probe
  std::optional<double> measured_kl() const;  // fused vs standard, mean KL
};

nlohmann::json record_to_json(const DbRecord& r);
// Validates schema, key fields, both results (they must parse as their schemas and agree with the
// key), date and source. The error names the field.
Result<DbRecord> record_from_json(const nlohmann::json& j);

std::string utc_now_iso8601();

}  // namespace fusecheck
