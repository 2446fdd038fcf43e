#include "db/record.h"

#include <algorithm>
#include <cctype>
#include <ctime>

#include "check/check.h"
#include "probe/probe.h"
#include "probe/probe_report.h"
#include "check/result_json.h"
#include "util/hash.h"

namespace fusecheck {

using json = nlohmann::json;

namespace {

bool is_hex(const std::string& s, size_t n) {
  if (s.size() != n) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// Names that reach the database and reports: printable, no markup, no path tricks.
bool is_plain_name(const std::string& s, size_t max, bool allow_empty, std::string_view extra) {
  if (s.empty()) return allow_empty;
  if (s.size() > max) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || extra.find(c) != std::string_view::npos))
      return false;
  return true;
}

bool is_iso_date(const std::string& s) {
  // YYYY-MM-DDTHH:MM:SSZ
  if (s.size() != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
      s[16] != ':' || s[19] != 'Z')
    return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18})
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  return true;
}

std::string str_field(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) return std::string("\x01");  // marks "missing"
  return it->get<std::string>();
}

}  // namespace

DbKey current_key(const std::string& fingerprint, const NumericsProfile& profile,
                  const std::string& device) {
  return {fingerprint, profile.name,      hash_hex(numerics_to_json(profile).dump()),
          device,      kAnalysisRevision, kProbeRevision};
}

std::string DbRecord::static_verdict() const {
  if (!static_result) return "";
  return static_result->value("verdict", "");
}

std::string DbRecord::measured_verdict() const {
  if (!probe) return "";
  return probe->value("verdict", "");
}

std::optional<double> DbRecord::measured_kl() const {
  if (!probe) return std::nullopt;
  auto p = probe_from_json(*probe);
  if (!p) return std::nullopt;
  return p->fused_vs_standard.kl_mean;
}

json record_to_json(const DbRecord& r) {
  return {{"schema", kDbRecordSchema},
          {"fingerprint", r.key.fingerprint},
          {"kernels", r.key.kernels},
          {"profile_hash", r.key.profile_hash},
          {"device", r.key.device},
          {"analysis_revision", r.key.analysis_revision},
          {"probe_revision", r.key.probe_revision},
          {"model", {{"name", r.model_name}, {"revision", r.model_revision}}},
          {"static", r.static_result ? *r.static_result : json(nullptr)},
          {"probe", r.probe ? *r.probe : json(nullptr)},
          {"tool_version", r.tool_version},
          {"date", r.date},
          {"source", r.source}};
}

Result<DbRecord> record_from_json(const json& j) {
  if (!j.is_object()) return make_error("not a JSON object");
  if (str_field(j, "schema") != kDbRecordSchema)
    return make_error("\"schema\" is not \"{}\"", kDbRecordSchema);
  DbRecord r;
  r.key.fingerprint = str_field(j, "fingerprint");
  if (!is_hex(r.key.fingerprint, 32))
    return make_error("\"fingerprint\" is not 32 lower-case hex digits");
  r.key.kernels = str_field(j, "kernels");
  if (!is_plain_name(r.key.kernels, 64, false, "-_."))
    return make_error("\"kernels\" is not a profile name");
  r.key.profile_hash = str_field(j, "profile_hash");
  if (!is_hex(r.key.profile_hash, 32))
    return make_error("\"profile_hash\" is not 32 lower-case hex digits");
  r.key.device = str_field(j, "device");
  if (!is_plain_name(r.key.device, 64, false, "-_.:"))
    return make_error("\"device\" is not a device name");
  for (auto [name, dst] : {std::pair{"analysis_revision", &r.key.analysis_revision},
                           {"probe_revision", &r.key.probe_revision}}) {
    auto it = j.find(name);
    if (it == j.end() || !it->is_number_integer() || *it < 0 || *it > 1000000)
      return make_error("\"{}\" is not a small non-negative integer", name);
    *dst = it->get<int>();
  }
  auto model = j.find("model");
  if (model == j.end() || !model->is_object()) return make_error("\"model\" is not an object");
  r.model_name = str_field(*model, "name");
  if (!is_plain_name(r.model_name, 200, true, "-_./"))
    return make_error("\"model.name\" is not an organisation/name");
  r.model_revision = str_field(*model, "revision");
  if (!is_plain_name(r.model_revision, 100, true, "-_."))
    return make_error("\"model.revision\" is not a revision");
  if (auto s = j.find("static"); s != j.end() && !s->is_null()) {
    auto parsed = result_from_json(*s);
    if (!parsed) return make_error("\"static\": {}", parsed.error().message);
    if (!s->contains("verdict") || !(*s)["verdict"].is_string() ||
        !parse_verdict((*s)["verdict"].get<std::string>()))
      return make_error("\"static\": \"verdict\" is not COMPATIBLE, WARNING or INCOMPATIBLE");
    if (parsed->fingerprint != r.key.fingerprint || parsed->kernels.name != r.key.kernels)
      return make_error("\"static\" is for another fingerprint or profile than the record");
    r.static_result = *s;
  }
  if (auto p = j.find("probe"); p != j.end() && !p->is_null()) {
    auto parsed = probe_from_json(*p);
    if (!parsed) return make_error("\"probe\": {}", parsed.error().message);
    if (parsed->profile != r.key.kernels)
      return make_error("\"probe\" measured another profile than the record's");
    r.probe = *p;
  }
  if (!r.static_result && !r.probe) return make_error("neither \"static\" nor \"probe\" is given");
  r.tool_version = str_field(j, "tool_version");
  if (!is_plain_name(r.tool_version, 40, false, "-_.+"))
    return make_error("\"tool_version\" is not a version");
  r.date = str_field(j, "date");
  if (!is_iso_date(r.date)) return make_error("\"date\" is not YYYY-MM-DDTHH:MM:SSZ");
  r.source = str_field(j, "source");
  // Printed to terminals and reports: printable ASCII only (no escape sequences from a file).
  const bool printable_source =
      std::all_of(r.source.begin(), r.source.end(), [](char c) { return c >= 32 && c < 127; });
  if (r.source == "\x01" || r.source.empty() || r.source.size() > 4096 || !printable_source)
    return make_error("\"source\" is not a line of printable text");
  return r;
}

std::string utc_now_iso8601() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace fusecheck
