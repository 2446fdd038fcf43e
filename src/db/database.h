// The compatibility database: an SQLite file (WAL mode) of DbRecords, one per key (db/record.h).
// It is the one store the load-time decision consults for measurements; the check's memo cache
// (check/cache.h) only saves recomputing a static result. Writes are transactions, so concurrent
// writers from several processes, or a writer killed mid-write, never leave a lost or half row;
// every row also carries a checksum of its results, so bytes damaged on disk are reported, not
// served. A database that cannot be written is opened read-only and still answers lookups. A
// damaged file gives a one-line error naming `fusecheck db rebuild`.
//
// Library code reads no environment: default_db_path takes the variables from the caller.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "db/record.h"
#include "util/result.h"

struct sqlite3;

namespace fusecheck {

// $XDG_DATA_HOME/fusecheck/fusecheck.db, else $HOME/.local/share/fusecheck/fusecheck.db.
std::string default_db_path(const char* xdg_data_home, const char* home);

enum class DbMode {
  kReadWrite,  // create if missing; falls back to read-only when the file cannot be written
  kReadOnly,   // never writes (lookups, export)
};

struct ImportStats {
  int added = 0;       // new keys
  int replaced = 0;    // imported over an older imported record (or a local one, --prefer-imported)
  int kept_local = 0;  // a local measurement exists and was kept
};

// A stored per-layer plan row: its key (analysis_revision unused) and the fusecheck.plan/1 text.
struct DbPlan {
  DbKey key;
  std::string plan_json;
};

class Database {
 public:
  static Result<Database> open(const std::string& path, DbMode mode = DbMode::kReadWrite);
  Database(Database&&) noexcept;
  Database& operator=(Database&&) noexcept;
  ~Database();

  const std::string& path() const { return path_; }
  bool read_only() const { return read_only_; }
  std::string read_only_reason() const { return read_only_reason_; }

  // A local result: merged into the row for its key (a new static result keeps a stored probe and
  // vice versa; an empty model name keeps the stored one). Local results always win.
  Status put_local(const DbRecord& r);
  // An imported record: added, or replacing the stored one unless that holds a local measurement
  // and !prefer_imported.
  Result<ImportStats> put_imported(const std::vector<DbRecord>& records, bool prefer_imported);

  Result<std::optional<DbRecord>> get(const DbKey& key) const;
  // Records whose fingerprint starts with `query` (8+ hex digits), or of every checkpoint a record
  // names `query` (its other profiles may be unnamed); all records when query is "". `kernels` ""
  // = every profile.
  Result<std::vector<DbRecord>> find(const std::string& query, const std::string& kernels) const;
  // A per-layer kernel plan (fusecheck.plan/1 text) for key's checkpoint, profile, device and
  // probe revision (analysis_revision is not part of a plan's key): replaced when stored again.
  Status put_plan(const DbKey& key, const std::string& plan_json);
  Result<std::optional<std::string>> get_plan(const DbKey& key) const;
  // Every stored plan (export, merge); a row whose checksum does not match is an error.
  Result<std::vector<DbPlan>> plans() const;
  // Imported plans in one transaction: added, or replacing a stored one only if prefer_imported.
  Result<ImportStats> put_imported_plans(const std::vector<DbPlan>& plans, bool prefer_imported);
  // SQLite's integrity check, then every row's checksum and schema; the first problem found.
  Status verify() const;

 private:
  Database() = default;
  int open_connection(const std::string& name, int flags);
  Status init_schema();
  bool ensure_wal();
  Status exec(const char* sql) const;
  Status in_transaction(const std::function<Status()>& body) const;
  Error sql_error(const char* what) const;

  std::string path_;
  sqlite3* db_ = nullptr;
  bool read_only_ = false;
  std::string read_only_reason_;
};

// The stored measurement the load-time decision and `check --probe` use, with where it came from.
struct StoredMeasurement {
  DbRecord record;             // record.probe is set
  std::string origin() const;  // "probe" (measured here) or "database" (imported)
};
// The measurement for this checkpoint, profile and device under the current revisions, or nullopt.
Result<std::optional<StoredMeasurement>> find_measurement(const Database& db,
                                                          const std::string& fingerprint,
                                                          const NumericsProfile& profile,
                                                          const std::string& device = "cpu");

// `fusecheck db rebuild`: moves a damaged file aside (PATH.damaged-<date>), creates an empty
// database at PATH and copies every row of the old file (records and plans) that can still be read
// and verified.
struct RebuildStats {
  std::string moved_to;
  int salvaged = 0;
  int plans_salvaged = 0;  // plan rows whose checksum still matches
};
Result<RebuildStats> rebuild_database(const std::string& path);

}  // namespace fusecheck
