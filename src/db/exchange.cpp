#include "db/exchange.h"

#include <filesystem>
#include <set>

#include "util/atomic_file.h"
#include "util/hash.h"

namespace fusecheck {

using json = nlohmann::json;

namespace {

// Records imported from a file keep a chain-free origin: the first import names where they came
// from; a record already "imported from X" keeps X.
DbRecord as_imported(DbRecord r, const std::string& file) {
  if (r.is_local()) r.source = "imported from " + printable(file);
  return r;
}

// o[k] when it is a string, else "" (never throws on a mistyped field).
std::string string_at(const json& o, const char* k) {
  auto it = o.find(k);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

json plan_line(const DbPlan& p) {
  return {{"schema", kDbPlanSchema},  {"fingerprint", p.key.fingerprint},
          {"kernels", p.key.kernels}, {"profile_hash", p.key.profile_hash},
          {"device", p.key.device},   {"probe_revision", p.key.probe_revision},
          {"plan", p.plan_json},      {"checksum", hash_hex(p.plan_json)}};
}

// A kDbPlanSchema line back to a plan row: every field typed, the checksum matching the plan text,
// and the plan a fusecheck.plan/1 object for the same checkpoint and profile. (src/plan validates
// the plan fully when the load-time decision reads it.)
Result<DbPlan> plan_from_line(const json& j) {
  auto str = [&](const char* k) -> Result<std::string> {
    std::string v = string_at(j, k);
    if (v.empty()) return make_error("\"{}\" is not a non-empty string", k);
    return v;
  };
  DbPlan p;
  FC_ASSIGN(fp, str("fingerprint"));
  FC_ASSIGN(kernels, str("kernels"));
  FC_ASSIGN(hash, str("profile_hash"));
  FC_ASSIGN(device, str("device"));
  FC_ASSIGN(text, str("plan"));
  FC_ASSIGN(sum, str("checksum"));
  auto rev = j.find("probe_revision");
  if (rev == j.end() || !rev->is_number_integer() || rev->get<int64_t>() < 0 ||
      rev->get<int64_t>() > 1000000)
    return make_error("\"probe_revision\" is not a revision number");
  if (hash_hex(text) != sum) return make_error("the plan does not match its checksum");
  const json plan = json::parse(text, nullptr, false);
  if (!plan.is_object() || string_at(plan, "schema") != "fusecheck.plan/1")
    return make_error("\"plan\" is not a fusecheck.plan/1 object");
  const auto prof = plan.find("profile");
  const bool same_profile = prof != plan.end() && prof->is_object() &&
                            string_at(*prof, "name") == kernels && string_at(*prof, "hash") == hash;
  if (string_at(plan, "fingerprint") != fp || !same_profile)
    return make_error("the plan is for another checkpoint or profile than its key");
  p.key.fingerprint = fp, p.key.kernels = kernels, p.key.profile_hash = hash;
  p.key.device = device, p.key.probe_revision = static_cast<int>(rev->get<int64_t>());
  p.plan_json = std::move(text);
  return p;
}

}  // namespace

Result<std::vector<DbPlan>> plans_for_export(const Database& db,
                                             const std::vector<DbRecord>& records, bool by_model,
                                             const std::string& kernels) {
  FC_ASSIGN(all, db.plans());
  std::set<std::string> fps;
  for (const auto& r : records) fps.insert(r.key.fingerprint);
  std::vector<DbPlan> out;
  for (auto& p : all)
    if ((!by_model || fps.count(p.key.fingerprint)) &&
        (kernels.empty() || p.key.kernels == kernels))
      out.push_back(std::move(p));
  return out;
}

std::string export_jsonl(const std::vector<DbRecord>& records, const std::vector<DbPlan>& plans) {
  std::string out;
  for (const auto& r : records) out += record_to_json(r).dump() + "\n";
  for (const auto& p : plans) out += plan_line(p).dump() + "\n";
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
      } else if (j.is_object() && string_at(j, "schema") == kDbPlanSchema) {
        auto p = plan_from_line(j);
        if (p) {
          out.plans.push_back(std::move(*p));
          continue;
        }
        why = "plan: " + p.error().message;
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
  FC_ASSIGN(plan_stats, db.put_imported_plans(parsed.plans, prefer_imported));
  out.stats = stats, out.plan_stats = plan_stats;
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
  FC_ASSIGN(plans, other.plans());
  FC_ASSIGN(stats, db.put_imported(records, prefer_imported));
  FC_ASSIGN(ps, db.put_imported_plans(plans, prefer_imported));
  stats.added += ps.added, stats.replaced += ps.replaced, stats.kept_local += ps.kept_local;
  return stats;
}

}  // namespace fusecheck
