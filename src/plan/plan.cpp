#include "plan/plan.h"

#include <simdjson.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <utility>

#include "util/atomic_file.h"

namespace fusecheck {

namespace {

constexpr size_t kMaxPlanBytes = 16u << 20;
constexpr int64_t kMaxPlanLayers = 4096;

const KvFormat kAllKvFormats[] = {KvFormat::kSame, KvFormat::kFp16, KvFormat::kInt8,
                                  KvFormat::kFp8E4M3};

nlohmann::json measure_json(const PlanMeasure& m) {
  return {{"added_kl", m.added_kl},
          {"kl_vs_fp32", m.kl_vs_fp32},
          {"standard_kl_vs_fp32", m.standard_kl},
          {"top1", m.top1},
          {"standard_top1", m.standard_top1},
          {"top1_loss_points", m.top1_loss_points},
          {"positions", m.positions}};
}

bool is_hex(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// Field readers over a simdjson object: each error names the field path.
struct Reader {
  const std::string& src;
  Error bad(const std::string& field, const char* want) const {
    return Error{fmt::format("{}: malformed plan: \"{}\" must be {}", src, field, want)};
  }
  Result<std::string> str(simdjson::dom::object o, const char* k, const std::string& path) const {
    std::string_view v;
    if (o[k].get_string().get(v)) return bad(path + k, "a string");
    return std::string(v);
  }
  Result<double> num(simdjson::dom::object o, const char* k, const std::string& path) const {
    double v = 0;
    if (o[k].get_double().get(v) || !std::isfinite(v)) return bad(path + k, "a finite number");
    return v;
  }
  Result<int64_t> integer(simdjson::dom::object o, const char* k, const std::string& path) const {
    int64_t v = 0;
    if (o[k].get_int64().get(v) || v < 0) return bad(path + k, "a non-negative integer");
    return v;
  }
  Result<simdjson::dom::object> obj(simdjson::dom::object o, const char* k,
                                    const std::string& path) const {
    simdjson::dom::object v;
    if (o[k].get_object().get(v)) return bad(path + k, "an object");
    return v;
  }
};

Result<PlanMeasure> read_measure(const Reader& rd, simdjson::dom::object o, const std::string& p) {
  static constexpr std::pair<const char*, double PlanMeasure::*> kFields[] = {
      {"added_kl", &PlanMeasure::added_kl},
      {"kl_vs_fp32", &PlanMeasure::kl_vs_fp32},
      {"standard_kl_vs_fp32", &PlanMeasure::standard_kl},
      {"top1", &PlanMeasure::top1},
      {"standard_top1", &PlanMeasure::standard_top1},
      {"top1_loss_points", &PlanMeasure::top1_loss_points}};
  PlanMeasure m;
  for (const auto& [key, field] : kFields) {
    FC_ASSIGN(v, rd.num(o, key, p));
    m.*field = v;
  }
  FC_ASSIGN(n, rd.integer(o, "positions", p));
  m.positions = n;
  return m;
}

// One entry of "layers": {"layer": i, "fused": [...], "kv": "int8"}.
Result<LayerPlan> read_layer(const Reader& rd, simdjson::dom::element e, int64_t i) {
  const std::string p = fmt::format("layers[{}].", i);
  simdjson::dom::object o;
  if (e.get_object().get(o)) return rd.bad(fmt::format("layers[{}]", i), "an object");
  FC_ASSIGN(index, rd.integer(o, "layer", p));
  if (index != i) return rd.bad(p + "layer", fmt::format("{} (layers in order)", i).c_str());
  LayerPlan lp;
  simdjson::dom::array fused;
  if (o["fused"].get_array().get(fused)) return rd.bad(p + "fused", "an array of group names");
  for (auto g : fused) {
    std::string_view name;
    if (g.get_string().get(name)) return rd.bad(p + "fused", "an array of group names");
    bool found = false;
    for (int k = 0; k < kFusedGroupCount; ++k)
      if (fused_group_name(FusedGroup(k)) == name) lp.fused[static_cast<size_t>(k)] = found = true;
    if (!found)
      return Error{fmt::format("{}: malformed plan: {}fused names an unknown group \"{}\"", rd.src,
                               p, printable(name))};
  }
  FC_ASSIGN(kv, rd.str(o, "kv", p));
  auto f = parse_kv_layer_format(kv);
  if (!f) return Error{fmt::format("{}: malformed plan: {}kv: {}", rd.src, p, f.error().message)};
  lp.kv = *f;
  return lp;
}

}  // namespace

std::string kv_layer_format_name(const KvLayerFormat& f) {
  std::string s(kv_format_name(f.format));
  if (f.format != KvFormat::kSame && f.scale == KvScale::kPerChannel) s += ":per_channel";
  return s;
}

Result<KvLayerFormat> parse_kv_layer_format(const std::string& s) {
  const size_t colon = s.find(':');
  const std::string base = s.substr(0, colon), scale = colon == s.npos ? "" : s.substr(colon + 1);
  KvLayerFormat f;
  bool found = false;
  for (KvFormat k : kAllKvFormats)
    if (kv_format_name(k) == base) f.format = k, found = true;
  if (!found || (scale != "" && scale != "per_channel") ||
      (f.format == KvFormat::kSame && !scale.empty()))
    return make_error("\"{}\" is not a KV format (same, fp16, int8[:per_channel], fp8_e4m3...)",
                      printable(s));
  if (scale == "per_channel") f.scale = KvScale::kPerChannel;
  return f;
}

std::string plan_to_json(const PlanFile& p) {
  nlohmann::json layers = nlohmann::json::array();
  for (size_t l = 0; l < p.plan.layers.size(); ++l) {
    nlohmann::json fused = nlohmann::json::array();
    for (int g = 0; g < kFusedGroupCount; ++g)
      if (p.plan.layers[l].on(FusedGroup(g))) fused.push_back(fused_group_name(FusedGroup(g)));
    layers.push_back(
        {{"layer", l}, {"fused", fused}, {"kv", kv_layer_format_name(p.plan.layers[l].kv)}});
  }
  nlohmann::json sens = nlohmann::json::array();
  for (const auto& s : p.sensitivity)
    sens.push_back({{"layer", s.layer},
                    {"what", s.what},
                    {"added_kl", s.added_kl},
                    {"top1_loss_points", s.top1_loss_points},
                    {"shadow", s.shadow}});
  nlohmann::json j = {{"schema", kPlanSchema},
                      {"fingerprint", p.fingerprint},
                      {"model_path", p.model_path},
                      {"profile", {{"name", p.profile}, {"hash", p.profile_hash}}},
                      {"device", p.device},
                      {"budget", {{"kl", p.budget.kl}, {"top1_points", p.budget.top1_points}}},
                      {"layers", layers},
                      {"measured", measure_json(p.measured)},
                      {"within_budget", p.measured.within(p.budget)},
                      {"full_profile", measure_json(p.full_profile)},
                      {"kept",
                       {{"ops", p.kept.ops},
                        {"bytes", p.kept.bytes},
                        {"launches", p.kept.launches},
                        {"groups", p.kept.groups},
                        {"groups_total", p.kept.groups_total}}},
                      {"kv_bytes_per_token",
                       {{"plan", p.kv_bytes_per_token},
                        {"profile", p.profile_kv_bytes_per_token},
                        {"standard", p.standard_kv_bytes_per_token}}},
                      {"sensitivity", sens}};
  return j.dump(2) + "\n";
}

Result<PlanFile> plan_from_json(std::string_view text, const std::string& source) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  simdjson::dom::object o;
  if (parser.parse(text.data(), text.size()).get(root) || root.get_object().get(o))
    return make_error("{}: malformed plan: not a JSON object", source);
  const Reader rd{source};
  FC_ASSIGN(schema, rd.str(o, "schema", ""));
  if (schema != kPlanSchema)
    return make_error("{}: not a plan: schema \"{}\", expected \"{}\"", source, printable(schema),
                      kPlanSchema);
  PlanFile p;
  FC_ASSIGN(fp, rd.str(o, "fingerprint", ""));
  p.fingerprint = fp;
  if (!is_hex(p.fingerprint)) return rd.bad("fingerprint", "lowercase hex");
  FC_ASSIGN(mp, rd.str(o, "model_path", ""));
  p.model_path = mp;
  FC_ASSIGN(prof, rd.obj(o, "profile", ""));
  FC_ASSIGN(pn, rd.str(prof, "name", "profile."));
  p.profile = pn;
  FC_ASSIGN(ph, rd.str(prof, "hash", "profile."));
  p.profile_hash = ph;
  FC_ASSIGN(dev, rd.str(o, "device", ""));
  p.device = dev;
  FC_ASSIGN(bud, rd.obj(o, "budget", ""));
  FC_ASSIGN(bk, rd.num(bud, "kl", "budget."));
  p.budget.kl = bk;
  FC_ASSIGN(bt, rd.num(bud, "top1_points", "budget."));
  p.budget.top1_points = bt;
  simdjson::dom::array layers;
  if (o["layers"].get_array().get(layers) || layers.size() == 0 ||
      layers.size() > static_cast<size_t>(kMaxPlanLayers))
    return rd.bad("layers", "a non-empty array of layers");
  p.plan.profile = "plan:" + p.profile;
  int64_t i = 0;
  for (auto e : layers) {
    FC_ASSIGN(lp, read_layer(rd, e, i++));
    p.plan.layers.push_back(lp);
  }
  FC_ASSIGN(meas, rd.obj(o, "measured", ""));
  FC_ASSIGN(m, read_measure(rd, meas, "measured."));
  p.measured = m;
  FC_ASSIGN(full, rd.obj(o, "full_profile", ""));
  FC_ASSIGN(fm, read_measure(rd, full, "full_profile."));
  p.full_profile = fm;
  return p;
}

Result<PlanFile> read_plan_file(const std::string& path) {
  FC_ASSIGN(text, read_small_file(path, kMaxPlanBytes));
  return plan_from_json(text, path);
}

Status check_plan_matches(const PlanFile& p, const std::string& fingerprint, int64_t n_layers,
                          const std::string& path) {
  if (p.fingerprint != fingerprint)
    return make_error(
        "{}: the plan is for another checkpoint (fingerprint {}, this model's is {}); hint: run "
        "fusecheck plan on this model",
        path, p.fingerprint.substr(0, 16), fingerprint.substr(0, 16));
  if (static_cast<int64_t>(p.plan.layers.size()) != n_layers)
    return make_error("{}: the plan has {} layers, the model {}", path, p.plan.layers.size(),
                      n_layers);
  return ok_status();
}

}  // namespace fusecheck
