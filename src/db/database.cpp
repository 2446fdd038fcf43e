#include "db/database.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>

#include "util/hash.h"

namespace fusecheck {

using json = nlohmann::json;

namespace {

// Version 1: one row per key; the record itself is record_json (fusecheck.db/1), the other columns
// are the key (unique) and the model name, for lookups.
constexpr int kSchemaVersion = 1;
constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS records("
    " fingerprint TEXT NOT NULL, kernels TEXT NOT NULL, profile_hash TEXT NOT NULL,"
    " device TEXT NOT NULL, analysis_revision INTEGER NOT NULL, probe_revision INTEGER NOT NULL,"
    " model_name TEXT NOT NULL, record_json TEXT NOT NULL, checksum TEXT NOT NULL,"
    " PRIMARY KEY(fingerprint, kernels, profile_hash, device, analysis_revision, probe_revision));"
    "CREATE INDEX IF NOT EXISTS records_by_model ON records(model_name);"
    // Per-layer kernel plans (fusecheck.plan/1, src/plan), one per checkpoint, profile and device
    // under a probe revision; added to version 1 (older builds never read the table).
    "CREATE TABLE IF NOT EXISTS plans("
    " fingerprint TEXT NOT NULL, kernels TEXT NOT NULL, profile_hash TEXT NOT NULL,"
    " device TEXT NOT NULL, probe_revision INTEGER NOT NULL, plan_json TEXT NOT NULL,"
    " checksum TEXT NOT NULL,"
    " PRIMARY KEY(fingerprint, kernels, profile_hash, device, probe_revision));";
constexpr int kBusyTimeoutMs = 30000;  // 16 writers at once wait for each other, never fail

std::string rebuild_hint(const std::string& path) {
  return fmt::format(
      "run `fusecheck db rebuild --db {}` to move it aside and keep what can be read", path);
}

Status make_parent_dirs(const std::string& path) {
  auto parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) return ok_status();
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec) return make_error("{}: cannot create directory: {}", parent.string(), ec.message());
  return ok_status();
}

// file: URI for sqlite3_open_v2 with query parameters; '%', '?' and '#' are escaped.
std::string file_uri(const std::string& path, const char* query) {
  std::string out = "file:";
  for (char c : path) {
    if (c == '%' || c == '?' || c == '#')
      out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    else
      out += c;
  }
  return out + "?" + query;
}

// A prepared statement that finalizes itself.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  void bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_TRANSIENT);
  }
  void bind(int i, int64_t v) { sqlite3_bind_int64(s_, i, v); }
  int step() { return sqlite3_step(s_); }
  std::string text(int col) const {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
    return p ? std::string(p, size_t(sqlite3_column_bytes(s_, col))) : std::string();
  }
  int64_t integer(int col) const { return sqlite3_column_int64(s_, col); }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

void bind_key(Stmt& s, const DbKey& k) {
  s.bind(1, k.fingerprint);
  s.bind(2, k.kernels);
  s.bind(3, k.profile_hash);
  s.bind(4, k.device);
  s.bind(5, int64_t(k.analysis_revision));
  s.bind(6, int64_t(k.probe_revision));
}

constexpr const char* kKeyWhere =
    " WHERE fingerprint=?1 AND kernels=?2 AND profile_hash=?3 AND device=?4 AND "
    "analysis_revision=?5 AND probe_revision=?6";

constexpr const char* kPlanSelect =
    "SELECT fingerprint, kernels, profile_hash, device, probe_revision, plan_json, checksum FROM "
    "plans";

// A row of kPlanSelect into p; false when its checksum does not match (damaged on disk).
bool plan_row(const Stmt& s, DbPlan& p) {
  p.key.fingerprint = s.text(0), p.key.kernels = s.text(1), p.key.profile_hash = s.text(2);
  p.key.device = s.text(3), p.key.probe_revision = static_cast<int>(s.integer(4));
  p.plan_json = s.text(5);
  return hash_hex(p.plan_json) == s.text(6);
}

// A stored row back to a record: the checksum must match and the record must validate and sit
// under its own key.
Result<DbRecord> decode_row(const std::string& path, const std::string& text,
                            const std::string& checksum, const DbKey* expect) {
  auto damaged = [&](const std::string& why) {
    return make_error("{}: a record is damaged ({}); {}", path, why, rebuild_hint(path));
  };
  if (hash_hex(text) != checksum) return damaged("checksum mismatch");
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return damaged("not JSON");
  auto r = record_from_json(j);
  if (!r) return damaged(r.error().message);
  if (expect && !(r->key == *expect)) return damaged("stored under another key");
  return r;
}

DbRecord merge_local(DbRecord fresh, const DbRecord& old) {
  if (!fresh.static_result) fresh.static_result = old.static_result;
  if (fresh.model_name.empty()) fresh.model_name = old.model_name;
  if (fresh.model_revision.empty()) fresh.model_revision = old.model_revision;
  if (!fresh.probe && old.probe) {
    // The stored measurement stays, with its origin.
    fresh.probe = old.probe;
    fresh.source = old.source;
  }
  return fresh;
}

}  // namespace

std::string default_db_path(const char* xdg_data_home, const char* home) {
  if (xdg_data_home && *xdg_data_home)
    return std::string(xdg_data_home) + "/fusecheck/fusecheck.db";
  return std::string(home && *home ? home : "/tmp") + "/.local/share/fusecheck/fusecheck.db";
}

Database::Database(Database&& o) noexcept {
  *this = std::move(o);
}
Database& Database::operator=(Database&& o) noexcept {
  if (this != &o) {
    if (db_) sqlite3_close_v2(db_);
    path_ = std::move(o.path_);
    db_ = o.db_;
    o.db_ = nullptr;
    read_only_ = o.read_only_;
    read_only_reason_ = std::move(o.read_only_reason_);
  }
  return *this;
}
Database::~Database() {
  if (db_) sqlite3_close_v2(db_);
}

Error Database::sql_error(const char* what) const {
  const int code = db_ ? sqlite3_errcode(db_) : SQLITE_CANTOPEN;
  const char* msg = db_ ? sqlite3_errmsg(db_) : "cannot open";
  if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
    return make_error("{}: the database file is damaged or not a fusecheck database ({}); {}",
                      path_, msg, rebuild_hint(path_));
  return make_error("{}: cannot {}: {}", path_, what, msg);
}

Status Database::exec(const char* sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    sqlite3_free(err);
    return sql_error("update the database");
  }
  return ok_status();
}

namespace {

// The first column of a one-row statement (PRAGMA), the statement finalized before returning.
std::optional<std::string> pragma_text(sqlite3* db, const char* sql) {
  Stmt s(db, sql);
  if (!s.ok() || s.step() != SQLITE_ROW) return std::nullopt;
  return s.text(0);
}

}  // namespace

// Runs `body` under a write lock (BEGIN IMMEDIATE): committed if it succeeds, rolled back if not.
Status Database::in_transaction(const std::function<Status()>& body) const {
  FC_TRY(exec("BEGIN IMMEDIATE"));
  if (auto st = body(); !st) {
    (void)exec("ROLLBACK");
    return st;
  }
  return exec("COMMIT");
}

Status Database::init_schema() {
  // Under a write lock, so that concurrent first opens do not race.
  FC_TRY(exec("PRAGMA synchronous=NORMAL"));
  auto body = [&]() -> Status {
    const auto v = pragma_text(db_, "PRAGMA user_version");
    if (!v) return sql_error("read the database");
    if (std::stoll(*v) > kSchemaVersion)
      return make_error("{}: written by a newer fusecheck (schema {}, this build reads {})", path_,
                        *v, kSchemaVersion);
    FC_TRY(exec(kSchema));
    return exec(fmt::format("PRAGMA user_version={}", kSchemaVersion).c_str());
  };
  return in_transaction(body);
}

bool Database::ensure_wal() {
  // Already WAL (every file this tool made): a read. Else switching needs a moment alone with the
  // file; a writer or a recovery after a killed writer can hold it, so wait as for any lock.
  if (pragma_text(db_, "PRAGMA journal_mode") == "wal") return true;
  for (int waited = 0; waited < kBusyTimeoutMs; waited += 10) {
    if (pragma_text(db_, "PRAGMA journal_mode=WAL") == "wal") return true;
    const int code = sqlite3_errcode(db_) & 0xff;
    if (code != SQLITE_BUSY && code != SQLITE_LOCKED) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

int Database::open_connection(const std::string& name, int flags) {
  if (db_) sqlite3_close_v2(db_), db_ = nullptr;
  int rc = sqlite3_open_v2(name.c_str(), &db_, flags | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc == SQLITE_OK) sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  return rc;
}

Result<Database> Database::open(const std::string& path, DbMode mode) {
  Database d;
  d.path_ = path;
  struct stat st {};
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && !S_ISREG(st.st_mode)) return make_error("{}: not a regular file", path);
  auto damaged = [&] {
    const int code = sqlite3_errcode(d.db_);
    return code == SQLITE_NOTADB || code == SQLITE_CORRUPT;
  };
  if (mode == DbMode::kReadWrite) {
    const Status dirs = make_parent_dirs(path);
    if (!dirs && !exists) return dirs.error();
    if (d.open_connection(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) == SQLITE_OK &&
        sqlite3_db_readonly(d.db_, "main") == 0) {
      if (d.ensure_wal()) {
        FC_TRY(d.init_schema());
        return d;
      }
      if (damaged()) return d.sql_error("open");
    }
    if (!exists) return d.sql_error("create the database");
    d.read_only_reason_ = "the file or its directory cannot be written";
  }
  if (!exists) return make_error("{}: no database (fusecheck db add creates it)", path);
  // Read-only: through the WAL when its shared-memory file can be used, else as an immutable file
  // (a directory we cannot write: the last writer checkpointed the WAL into the file on closing).
  d.read_only_ = true;
  for (const char* q : {"mode=ro", "immutable=1"}) {
    if (d.open_connection(file_uri(path, q), SQLITE_OPEN_READONLY | SQLITE_OPEN_URI) != SQLITE_OK)
      continue;
    if (pragma_text(d.db_, "SELECT count(*) FROM records")) return d;
    if (damaged()) return d.sql_error("open");
  }
  return d.sql_error("open the database read-only");
}

Result<std::optional<DbRecord>> Database::get(const DbKey& key) const {
  Stmt s(db_, (std::string("SELECT record_json, checksum FROM records") + kKeyWhere).c_str());
  if (!s.ok()) return sql_error("read the database");
  bind_key(s, key);
  int rc = s.step();
  if (rc == SQLITE_DONE) return std::optional<DbRecord>();
  if (rc != SQLITE_ROW) return sql_error("read the database");
  FC_ASSIGN(r, decode_row(path_, s.text(0), s.text(1), &key));
  return std::optional<DbRecord>(std::move(r));
}

Result<std::vector<DbRecord>> Database::find(const std::string& query,
                                             const std::string& kernels) const {
  Stmt s(db_,
         "SELECT record_json, checksum FROM records WHERE (?1 = '' OR fingerprint IN (SELECT "
         "fingerprint FROM records WHERE model_name = ?1) OR (length(?1) >= 8 AND "
         "substr(fingerprint, 1, length(?1)) = ?1)) AND (?2 = '' OR "
         "kernels = ?2) ORDER BY model_name, fingerprint, kernels, device, analysis_revision, "
         "probe_revision");
  if (!s.ok()) return sql_error("read the database");
  s.bind(1, query);
  s.bind(2, kernels);
  std::vector<DbRecord> out;
  for (int rc; (rc = s.step()) != SQLITE_DONE;) {
    if (rc != SQLITE_ROW) return sql_error("read the database");
    FC_ASSIGN(r, decode_row(path_, s.text(0), s.text(1), nullptr));
    out.push_back(std::move(r));
  }
  return out;
}

Status Database::put_plan(const DbKey& key, const std::string& plan_json) {
  if (read_only_) return make_error("{}: read-only ({})", path_, read_only_reason_);
  Stmt s(db_,
         "INSERT OR REPLACE INTO plans(fingerprint, kernels, profile_hash, device, probe_revision, "
         "plan_json, checksum) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  if (!s.ok()) return sql_error("write the database");
  s.bind(1, key.fingerprint), s.bind(2, key.kernels), s.bind(3, key.profile_hash);
  s.bind(4, key.device), s.bind(5, static_cast<int64_t>(key.probe_revision));
  s.bind(6, plan_json), s.bind(7, hash_hex(plan_json));
  if (s.step() != SQLITE_DONE) return sql_error("write the database");
  return ok_status();
}

Result<std::optional<std::string>> Database::get_plan(const DbKey& key) const {
  Stmt s(db_,
         "SELECT plan_json, checksum FROM plans WHERE fingerprint = ?1 AND kernels = ?2 AND "
         "profile_hash = ?3 AND device = ?4 AND probe_revision = ?5");
  // A file written before plans were stored (opened read-only) has no table: no plan.
  if (!s.ok()) return std::optional<std::string>();
  s.bind(1, key.fingerprint), s.bind(2, key.kernels), s.bind(3, key.profile_hash);
  s.bind(4, key.device), s.bind(5, static_cast<int64_t>(key.probe_revision));
  const int rc = s.step();
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  if (rc != SQLITE_ROW) return sql_error("read the database");
  std::string text = s.text(0);
  if (hash_hex(text) != s.text(1))
    return make_error("{}: a stored plan is damaged (checksum mismatch); {}", path_,
                      rebuild_hint(path_));
  return std::optional<std::string>(std::move(text));
}

Result<std::vector<DbPlan>> Database::plans() const {
  std::vector<DbPlan> out;
  Stmt s(db_, (std::string(kPlanSelect) + " ORDER BY fingerprint, kernels, device").c_str());
  if (!s.ok()) return out;  // a file written before plans were stored (opened read-only)
  for (int rc; (rc = s.step()) != SQLITE_DONE;) {
    if (rc != SQLITE_ROW) return sql_error("read the database");
    DbPlan p;
    if (!plan_row(s, p))
      return make_error("{}: a stored plan is damaged (checksum mismatch); {}", path_,
                        rebuild_hint(path_));
    out.push_back(std::move(p));
  }
  return out;
}

Result<ImportStats> Database::put_imported_plans(const std::vector<DbPlan>& plans,
                                                 bool prefer_imported) {
  if (read_only_) return make_error("{}: read-only ({})", path_, read_only_reason_);
  ImportStats stats;
  auto body = [&]() -> Status {
    for (const DbPlan& p : plans) {
      auto old = get_plan(p.key);  // a damaged stored plan counts as one: it is replaced
      const bool there = !old.ok() || old->has_value();
      if (there && !prefer_imported) {
        ++stats.kept_local;
        continue;
      }
      ++(there ? stats.replaced : stats.added);
      FC_TRY(put_plan(p.key, p.plan_json));
    }
    return ok_status();
  };
  FC_TRY(in_transaction(body));
  return stats;
}

Status Database::verify() const {
  Stmt s(db_, "PRAGMA integrity_check");
  if (!s.ok()) return sql_error("check the database");
  for (int rc; (rc = s.step()) != SQLITE_DONE;) {
    if (rc != SQLITE_ROW) return sql_error("check the database");
    if (s.text(0) != "ok")
      return make_error("{}: the database file is damaged ({}); {}", path_, printable(s.text(0)),
                        rebuild_hint(path_));
  }
  FC_TRY(find("", ""));
  FC_TRY(plans());
  return ok_status();
}

namespace {

Status write_row(sqlite3* db, const DbRecord& r, const std::string& path) {
  const std::string text = record_to_json(r).dump();
  Stmt s(db,
         "INSERT OR REPLACE INTO records(fingerprint, kernels, profile_hash, device, "
         "analysis_revision, probe_revision, model_name, record_json, checksum) VALUES "
         "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
  if (!s.ok()) return make_error("{}: cannot write: {}", path, sqlite3_errmsg(db));
  bind_key(s, r.key);
  s.bind(7, r.model_name);
  s.bind(8, text);
  s.bind(9, hash_hex(text));
  if (s.step() != SQLITE_DONE) return make_error("{}: cannot write: {}", path, sqlite3_errmsg(db));
  return ok_status();
}

}  // namespace

Status Database::put_local(const DbRecord& r) {
  if (read_only_) return make_error("{}: read-only ({})", path_, read_only_reason_);
  auto body = [&]() -> Status {
    DbRecord fresh = r;
    fresh.source = "local";
    if (auto old = get(r.key); old.ok() && old->has_value()) fresh = merge_local(fresh, **old);
    return write_row(db_, fresh, path_);  // a damaged old row is replaced by the fresh result
  };
  return in_transaction(body);
}

Result<ImportStats> Database::put_imported(const std::vector<DbRecord>& records,
                                           bool prefer_imported) {
  if (read_only_) return make_error("{}: read-only ({})", path_, read_only_reason_);
  ImportStats stats;
  auto body = [&]() -> Status {
    for (const DbRecord& r : records) {
      auto old = get(r.key);
      DbRecord rec = r;
      if (old.ok() && old->has_value()) {
        const DbRecord& o = **old;
        const bool local_measured = o.is_local() && o.probe;
        if ((local_measured || (o.is_local() && !r.probe)) && !prefer_imported) {
          ++stats.kept_local;
          continue;
        }
        if (rec.model_name.empty())
          rec.model_name = o.model_name, rec.model_revision = o.model_revision;
        if (!rec.static_result) rec.static_result = o.static_result;
        ++stats.replaced;
      } else {
        ++stats.added;
      }
      FC_TRY(write_row(db_, rec, path_));
    }
    return ok_status();
  };
  FC_TRY(in_transaction(body));
  return stats;
}

std::string StoredMeasurement::origin() const {
  return record.is_local() ? "probe" : "database";
}

Result<std::optional<StoredMeasurement>> find_measurement(const Database& db,
                                                          const std::string& fingerprint,
                                                          const NumericsProfile& profile,
                                                          const std::string& device) {
  FC_ASSIGN(r, db.get(current_key(fingerprint, profile, device)));
  if (!r || !r->probe) return std::optional<StoredMeasurement>();
  return std::optional<StoredMeasurement>(StoredMeasurement{std::move(*r)});
}

namespace {

// The plan rows of a damaged file whose checksum still matches, one at a time.
std::vector<DbPlan> salvage_plans(sqlite3* old) {
  std::vector<DbPlan> out;
  Stmt s(old, kPlanSelect);
  if (!s.ok()) return out;  // written before plans were stored
  while (s.step() == SQLITE_ROW) {
    if (DbPlan p; plan_row(s, p)) out.push_back(std::move(p));
  }
  return out;
}

}  // namespace

Result<RebuildStats> rebuild_database(const std::string& path) {
  RebuildStats stats;
  std::vector<DbRecord> keep;
  std::vector<DbPlan> plans;
  {
    // Whatever rows can still be read and verified, one at a time: a damaged page stops the scan,
    // a damaged row is skipped.
    sqlite3* old = nullptr;
    if (sqlite3_open_v2(file_uri(path, "mode=ro").c_str(), &old,
                        SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr) == SQLITE_OK) {
      Stmt s(old, "SELECT record_json, checksum FROM records");
      if (s.ok())
        while (s.step() == SQLITE_ROW)
          if (auto r = decode_row(path, s.text(0), s.text(1), nullptr)) keep.push_back(*r);
      plans = salvage_plans(old);
    }
    sqlite3_close_v2(old);
  }
  stats.moved_to = path + ".damaged-" + utc_now_iso8601();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return make_error("{}: no database to rebuild", path);
  // The WAL may hold committed rows: it moves with the file.
  for (const char* suffix : {"", "-wal", "-shm"}) {
    if (!std::filesystem::exists(path + suffix, ec)) continue;
    std::filesystem::rename(path + suffix, stats.moved_to + suffix, ec);
    if (ec) return make_error("{}{}: cannot move aside: {}", path, suffix, ec.message());
  }
  FC_ASSIGN(db, Database::open(path, DbMode::kReadWrite));
  if (db.read_only()) return make_error("{}: cannot be written", path);
  FC_TRY(db.put_imported(keep, true));  // each row keeps its own source
  FC_TRY(db.put_imported_plans(plans, true));
  stats.salvaged = int(keep.size()), stats.plans_salvaged = int(plans.size());
  return stats;
}

}  // namespace fusecheck
