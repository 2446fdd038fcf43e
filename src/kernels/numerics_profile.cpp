#include "kernels/numerics_profile.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "kernels/dot_choice.h"
#include "util/atomic_file.h"
#include "util/embedded.h"
#include "util/known_keys.h"

namespace fusecheck {

using json = nlohmann::json;

std::string_view kv_format_name(KvFormat f) {
  switch (f) {
    case KvFormat::kSame:
      return "same";
    case KvFormat::kFp16:
      return "fp16";
    case KvFormat::kInt8:
      return "int8";
    case KvFormat::kFp8E4M3:
      return "fp8_e4m3";
  }
  return "?";
}

std::string_view fused_group_name(FusedGroup g) {
  switch (g) {
    case FusedGroup::kAddRmsnorm:
      return "add_rmsnorm";
    case FusedGroup::kRmsnormQkv:
      return "rmsnorm_qkv";
    case FusedGroup::kQkNormRope:
      return "qk_norm_rope";
    case FusedGroup::kAttention:
      return "attention";
    case FusedGroup::kGateUpSilu:
      return "gate_up_silu";
  }
  return "?";
}

namespace {

// Typed reads: a wrong type in a user's profile file is an error, not an exception.
Result<std::string> read_string(const json& obj, const char* key, std::string fallback,
                                const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return fallback;
  if (!it->is_string()) return make_error("{}: \"{}\" must be a string", where, key);
  return it->get<std::string>();
}

Status read_unit(const json& p, const char* key, double& out, const std::string& where) {
  auto it = p.find(key);
  if (it == p.end()) return ok_status();
  if (!it->is_number() || it->get<double>() < 0 || it->get<double>() > 1)
    return make_error("{}: \"{}\" must be a number in [0, 1]", where, key);
  out = it->get<double>();
  return ok_status();
}

// "kv_cache": {"format": same|fp16|int8|fp8_e4m3, "scale": per_tensor|per_channel}.
Status parse_kv_cache(const json& kv, NumericsProfile& np, const std::string& where) {
  if (!kv.is_object()) return make_error("{}: \"kv_cache\" must be an object", where);
  FC_TRY(json_known_keys(kv, {"format", "scale"}, where + ": \"kv_cache\""));
  FC_ASSIGN(fmt, read_string(kv, "format", "same", where));
  FC_ASSIGN(scale, read_string(kv, "scale", "per_tensor", where));
  static constexpr std::pair<const char*, KvFormat> kFormats[] = {{"same", KvFormat::kSame},
                                                                  {"fp16", KvFormat::kFp16},
                                                                  {"int8", KvFormat::kInt8},
                                                                  {"fp8_e4m3", KvFormat::kFp8E4M3}};
  auto f = std::find_if(std::begin(kFormats), std::end(kFormats),
                        [&](const auto& e) { return fmt == e.first; });
  if (f == std::end(kFormats))
    return make_error("{}: kv_cache.format \"{}\" is not same, fp16, int8 or fp8_e4m3", where, fmt);
  np.kv_format = f->second;
  if (scale == "per_tensor")
    np.kv_scale = KvScale::kPerTensor;
  else if (scale == "per_channel")
    np.kv_scale = KvScale::kPerChannel;
  else
    return make_error("{}: kv_cache.scale \"{}\" is not per_tensor or per_channel", where, scale);
  return ok_status();
}

// "fusion": the fused kernel groups, by name.
Status parse_fusion(const json& fu, NumericsProfile& np, const std::string& where) {
  if (!fu.is_array()) return make_error("{}: \"fusion\" must be an array of names", where);
  for (const auto& g : fu) {
    bool found = false;
    for (int i = 0; i < kFusedGroupCount && g.is_string(); ++i)
      if (g.get<std::string>() == fused_group_name(FusedGroup(i))) {
        np.fusion.push_back(FusedGroup(i));
        found = true;
      }
    if (!found)
      return make_error(
          "{}: fusion entry {} is not one of add_rmsnorm, rmsnorm_qkv, qk_norm_rope, "
          "attention, gate_up_silu",
          where, printable(g.dump()));
  }
  return ok_status();
}

// "static_rules": the per-profile thresholds of the static screen (docs/VALIDATION.md): limits
// (non-negative numbers) and verdicts, by key; these two tables are also the keys it takes.
constexpr std::pair<std::string_view, double StaticRules::*> kRuleLimits[] = {
    {"incompatible_above_amplification", &StaticRules::incompatible_above_amplification},
    {"warning_above_amplification", &StaticRules::warning_above_amplification},
    {"incompatible_above_key_loss", &StaticRules::incompatible_above_key_loss},
    {"warning_above_key_loss", &StaticRules::warning_above_key_loss},
    {"incompatible_above_depth_key_loss", &StaticRules::incompatible_above_depth_key_loss},
    {"warning_above_depth_key_loss", &StaticRules::warning_above_depth_key_loss},
    {"warning_above_floor_key_loss", &StaticRules::warning_above_floor_key_loss},
    {"warning_above_rounding", &StaticRules::warning_above_rounding},
    {"warning_above_floor_accumulation", &StaticRules::warning_above_floor_accumulation}};
constexpr std::pair<std::string_view, int StaticRules::*> kRuleVerdicts[] = {
    {"best_without_qk_norm", &StaticRules::best_without_qk_norm}, {"worst", &StaticRules::worst}};

Status parse_static_rules(const json& sr, StaticRules& r, const std::string& where) {
  if (!sr.is_object()) return make_error("{}: \"static_rules\" must be an object", where);
  const auto in = [](const auto& table, std::string_view key) {
    return std::any_of(std::begin(table), std::end(table), [&](auto& e) { return e.first == key; });
  };
  for (auto it = sr.begin(); it != sr.end(); ++it)
    if (it.key() != "comment" && !in(kRuleLimits, it.key()) && !in(kRuleVerdicts, it.key()))
      return unknown_key(it.key(), where + ": \"static_rules\"");
  for (const auto& [key, field] : kRuleLimits) {
    auto it = sr.find(key);
    if (it == sr.end()) continue;
    if (!it->is_number() || it->get<double>() < 0)
      return make_error("{}: static_rules.{} must be a non-negative number", where, key);
    r.*field = it->get<double>();
  }
  for (const auto& [key, field] : kRuleVerdicts) {
    auto it = sr.find(key);
    if (it == sr.end()) continue;
    const std::string v = it->is_string() ? it->get<std::string>() : "";
    if (v == "COMPATIBLE")
      r.*field = 0;
    else if (v == "WARNING")
      r.*field = 1;
    else if (v == "INCOMPATIBLE")
      r.*field = 2;
    else
      return make_error("{}: static_rules.{} must be COMPATIBLE, WARNING or INCOMPATIBLE", where,
                        key);
  }
  return ok_status();
}

// "dots": the dot-product choices; each name must be one the engine runs (dot_choice.h).
Status parse_dots(const json& dots, std::vector<DotSpec>& out, const std::string& source) {
  if (!dots.is_array()) return make_error("{}: \"dots\" must be an array", source);
  for (const auto& d : dots) {
    if (!d.is_object() || !d.contains("name") || !d["name"].is_string())
      return make_error("{}: every \"dots\" entry needs a \"name\"", source);
    DotSpec s;
    s.name = d["name"].get<std::string>();
    const std::string where = source + ": dot \"" + printable(s.name) + "\"";
    FC_TRY(json_known_keys(
        d, {"name", "description", "isa", "rounds", "weights", "bit_identical_across_isas"},
        where));
    if (!parse_dot_choice(s.name))
      return make_error("{}: not a dot product the engine runs (contract, bf16-pairs)", where);
    FC_ASSIGN(description, read_string(d, "description", "", where));
    FC_ASSIGN(isa, read_string(d, "isa", "", where));
    FC_ASSIGN(rounds, read_string(d, "rounds", "", where));
    s.description = description, s.isa = isa, s.rounds = rounds;
    if (auto w = d.find("weights"); w != d.end()) {
      if (!w->is_array()) return make_error("{}: \"weights\" must be an array of dtypes", where);
      for (const auto& x : *w) {
        const std::string v = x.is_string() ? x.get<std::string>() : "";
        if (v != "bf16" && v != "f16" && v != "f32")
          return make_error("{}: weights: expected bf16, f16 or f32, found {}", where,
                            printable(x.dump()));
        s.weights.push_back(v);
      }
    }
    if (auto b = d.find("bit_identical_across_isas"); b != d.end()) {
      if (!b->is_boolean())
        return make_error("{}: \"bit_identical_across_isas\" must be true or false", where);
      s.bit_identical_across_isas = b->get<bool>();
    }
    out.push_back(std::move(s));
  }
  return ok_status();
}

}  // namespace

Result<NumericsRegistry> NumericsRegistry::parse(std::string_view text, const std::string& source) {
  json root = json::parse(text, nullptr, false);
  if (root.is_discarded() || !root.is_object() || !root.contains("profiles") ||
      !root["profiles"].is_array())
    return make_error("{}: expected a JSON object with a \"profiles\" array", source);
  FC_TRY(json_known_keys(root, {"profiles", "dots"}, source));
  NumericsRegistry reg;
  for (const auto& p : root["profiles"]) {
    NumericsProfile np;
    if (!p.is_object() || !p.contains("name") || !p["name"].is_string())
      return make_error("{}: every kernel profile needs a \"name\"", source);
    np.name = p["name"].get<std::string>();
    const std::string where = source + ": kernel profile \"" + printable(np.name) + "\"";
    FC_TRY(json_known_keys(p,
                           {"name", "description", "activation_unit_roundoff",
                            "accumulation_unit_roundoff", "kv_cache", "fusion", "static_rules"},
                           where));
    FC_ASSIGN(description, read_string(p, "description", "", where));
    np.description = description;
    FC_TRY(read_unit(p, "activation_unit_roundoff", np.activation_unit_roundoff, where));
    FC_TRY(read_unit(p, "accumulation_unit_roundoff", np.accumulation_unit_roundoff, where));
    if (auto kv = p.find("kv_cache"); kv != p.end()) FC_TRY(parse_kv_cache(*kv, np, where));
    if (auto fu = p.find("fusion"); fu != p.end()) FC_TRY(parse_fusion(*fu, np, where));
    if (auto sr = p.find("static_rules"); sr != p.end())
      FC_TRY(parse_static_rules(*sr, np.static_rules, where));
    reg.profiles_.push_back(std::move(np));
  }
  if (auto d = root.find("dots"); d != root.end()) FC_TRY(parse_dots(*d, reg.dots_, source));
  return reg;
}

Result<NumericsRegistry> NumericsRegistry::load(const std::string& file) {
  if (file.empty()) return parse(embedded_data("kernels.json"), "built-in kernels.json");
  FC_ASSIGN(text, read_small_file(file, kMaxConfigBytes));
  return parse(text, file);
}

Result<DotSpec> NumericsRegistry::find_dot(const std::string& name) const {
  std::string known;
  for (const auto& d : dots_) {
    if (d.name == name) return d;
    known += known.empty() ? d.name : ", " + d.name;
  }
  return make_error("--dot {}: unknown dot product; known: {}", printable(name), known);
}

Result<NumericsProfile> NumericsRegistry::find(const std::string& name) const {
  std::string known;
  for (const auto& p : profiles_) {
    if (p.name == name) return p;
    known += known.empty() ? p.name : ", " + p.name;
  }
  return make_error("unknown kernel profile \"{}\"; known: {}", name, known);
}

}  // namespace fusecheck
