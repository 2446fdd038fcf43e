// Sharing records: JSON lines export (one fusecheck.db/1 record per line, docs/JSON_SCHEMA.md),
// import of such a file, and merging another database file. Imported records are data only: each
// line is parsed and validated (record_from_json), nothing in it is run or opened; a bad line is
// rejected with its line number and the valid ones are imported in one transaction. An import
// never replaces a local measurement unless prefer_imported. Stored per-layer plans travel as lines
// of their own (kDbPlanSchema: the key, the fusecheck.plan/1 text and its checksum); an imported
// plan whose checksum does not match its text is rejected like a bad record.
#pragma once

#include <string>
#include <vector>

#include "db/database.h"
#include "util/result.h"

namespace fusecheck {

constexpr size_t kMaxImportBytes = 256u << 20;
constexpr size_t kMaxRecordBytes = 16u << 20;

constexpr const char* kDbPlanSchema = "fusecheck.db-plan/1";

std::string export_jsonl(const std::vector<DbRecord>& records,
                         const std::vector<DbPlan>& plans = {});

// The stored plans an export carries beside `records`: all of them, or when the records were
// selected by a model query (`by_model`) only those of their checkpoints; with `kernels` only
// that profile's. `db export` and the Python `Database.export` both write these.
Result<std::vector<DbPlan>> plans_for_export(const Database& db,
                                             const std::vector<DbRecord>& records, bool by_model,
                                             const std::string& kernels);

// Each line one record; blank lines are skipped. Errors: "FILE:LINE: why", one per bad line (at
// most `max_errors`, then a count); records get source "imported from FILE" unless they were
// already imported from elsewhere (the original origin stays).
struct ParsedImport {
  std::vector<DbRecord> records;
  std::vector<DbPlan> plans;
  std::vector<std::string> errors;
};
Result<ParsedImport> parse_import_file(const std::string& file, size_t max_errors = 20);

struct ImportReport {
  ImportStats stats, plan_stats;
  std::vector<std::string> rejected;  // "FILE:LINE: why"
};
Result<ImportReport> import_file(Database& db, const std::string& file, bool prefer_imported);
// `db merge OTHER`: every record and plan of another database (verified as when read), as an import
// (plan counts added into the stats).
Result<ImportStats> merge_database(Database& db, const std::string& other_path,
                                   bool prefer_imported);

}  // namespace fusecheck
