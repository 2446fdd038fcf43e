#include "db/exchange.h"

#include <filesystem>

#include "util/atomic_file.h"

namespace fusecheck {

using json = nlohmann::json;

namespace {

// Records imported from a file keep a chain-free origin: the first import names where they came
// from; a record already "imported from X" keeps X.
DbRecord as_imported(DbRecord r, const std::string& file) {
  if (r.is_local()) r.source = "imported from " + printable(file);
  return r;
}

}  // namespace

std::string export_jsonl(const std::vector<DbRecord>& records) {
  std::string out;
  for (const auto& r : records) out += record_to_json(r).dump() + "\n";
  return out;
}

Result<ParsedImport> parse_import_file(const std::string& file, size_t max_errors) {
  FC_ASSIGN(text, read_small_file(file, kMaxImportBytes));
  ParsedImport out;
  const std::string name = std::filesystem::path(file).filename().string();
  size_t bad = 0, line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    std::string why;
    if (line.size() > kMaxRecordBytes) {
      why = "record larger than 16 MiB";
    } else {
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded()) {
        why = "not a JSON value";
      } else if (auto r = record_from_json(j); !r) {
        why = r.error().message;
      } else {
        out.records.push_back(as_imported(std::move(r).value(), name));
        continue;
      }
    }
    if (++bad <= max_errors) out.errors.push_back(fmt::format("{}:{}: {}", file, line_no, why));
  }
  if (bad > max_errors)
    out.errors.push_back(fmt::format("{}: {} more bad lines", file, bad - max_errors));
  return out;
}

Result<ImportReport> import_file(Database& db, const std::string& file, bool prefer_imported) {
  FC_ASSIGN(parsed, parse_import_file(file));
  ImportReport out;
  out.rejected = std::move(parsed.errors);
  FC_ASSIGN(stats, db.put_imported(parsed.records, prefer_imported));
  out.stats = stats;
  return out;
}

Result<ImportStats> merge_database(Database& db, const std::string& other_path,
                                   bool prefer_imported) {
  std::error_code ec;
  if (std::filesystem::equivalent(db.path(), other_path, ec))
    return make_error("{}: is the database itself", other_path);
  FC_ASSIGN(other, Database::open(other_path, DbMode::kReadOnly));
  FC_ASSIGN(records, other.find("", ""));
  const std::string name = std::filesystem::path(other_path).filename().string();
  for (auto& r : records) r = as_imported(std::move(r), name);
  return db.put_imported(records, prefer_imported);
}

}  // namespace fusecheck
