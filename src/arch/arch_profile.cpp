#include "arch/arch_profile.h"

#include <simdjson.h>

#include <algorithm>
#include <optional>

#include "io/checkpoint.h"
#include "util/atomic_file.h"
#include "util/embedded.h"
#include "util/known_keys.h"

namespace fusecheck {

std::string layer_tensor_name(const std::string& prefix, const std::string& tmpl, int64_t layer) {
  std::string name = prefix + tmpl;
  auto pos = name.find("{layer}");
  if (pos != std::string::npos) name.replace(pos, 7, std::to_string(layer));
  return name;
}

std::string NormSpec::tensor_name(const std::string& prefix, int64_t layer) const {
  return layer_tensor_name(prefix, tensor, layer);
}

int64_t NormSpec::expected_size(const ModelConfig& c) const {
  switch (size) {
    case NormSize::kHidden:
      return c.hidden_size;
    case NormSize::kHeadDim:
      return c.head_dim;
    case NormSize::kQProj:
      return c.num_heads * c.head_dim;
    case NormSize::kKvProj:
      return c.num_kv_heads * c.head_dim;
  }
  return 0;
}

std::string_view norm_kind_name(NormKind k) {
  switch (k) {
    case NormKind::kBlock:
      return "block";
    case NormKind::kQ:
      return "q";
    case NormKind::kK:
      return "k";
    case NormKind::kFinal:
      return "final";
  }
  return "?";
}

std::string_view gain_convention_name(GainConvention c) {
  return c == GainConvention::kW ? "w" : "one_plus_w";
}

namespace {

using Element = simdjson::dom::element;
using Object = simdjson::dom::object;

// The value of `key`, the last one when the key repeats (nlohmann's parse, which read the
// profiles before, kept the last); nullopt when absent. Profile objects have a few keys each.
std::optional<Element> field(Object obj, std::string_view key) {
  std::optional<Element> found;
  for (auto [k, v] : obj)
    if (k == key) found = v;
  return found;
}

std::optional<std::string_view> string_field(Object obj, std::string_view key) {
  std::string_view v;
  if (auto e = field(obj, key); e && !e->get_string().get(v)) return v;
  return std::nullopt;
}

Status known_keys(Object obj, std::initializer_list<std::string_view> known,
                  const std::string& where) {
  for (auto kv : obj) FC_TRY(known_key(kv.key, known, where));
  return ok_status();
}

template <class E>
Status pick(Object j, const char* key, std::initializer_list<std::pair<const char*, E>> options,
            E& out, const std::string& where) {
  const auto v = string_field(j, key);
  if (!v) return make_error("{}: \"{}\" must be a string", where, key);
  std::string known;
  for (auto& [name, e] : options) {
    if (*v == name) {
      out = e;
      return ok_status();
    }
    known += known.empty() ? name : std::string(", ") + name;
  }
  return make_error("{}: \"{}\" = \"{}\" is not one of {}", where, key, *v, known);
}

Result<std::vector<std::string>> strings(Object j, const char* key, const std::string& where) {
  simdjson::dom::array arr;
  auto e = field(j, key);
  if (!e || e->get_array().get(arr) || arr.size() == 0)
    return make_error("{}: \"{}\" must be a non-empty array of strings", where, key);
  std::vector<std::string> out;
  for (Element s : arr) {
    std::string_view v;
    if (s.get_string().get(v)) return make_error("{}: \"{}\" must hold strings", where, key);
    out.emplace_back(v);
  }
  return out;
}

Status parse_decoder(Element e, DecoderTensors& out, const std::string& where) {
  Object d, l;
  if (e.get_object().get(d)) return make_error("{}: \"decoder\" must be an object", where);
  FC_TRY(known_keys(d, {"embed_tokens", "final_norm", "lm_head", "layer"}, where + " decoder"));
  auto str = [&](Object obj, const char* key, std::string& dst) -> Status {
    auto it = field(obj, key);
    if (!it) return ok_status();
    std::string_view v;
    if (it->get_string().get(v))
      return make_error("{}: decoder \"{}\" must be a string", where, key);
    dst = v;
    return ok_status();
  };
  FC_TRY(str(d, "embed_tokens", out.embed_tokens));
  FC_TRY(str(d, "final_norm", out.final_norm));
  if (field(d, "lm_head")) {
    FC_ASSIGN(heads, strings(d, "lm_head", where + " decoder"));
    out.lm_head = std::move(heads);
  }
  auto layer = field(d, "layer");
  if (!layer || layer->get_object().get(l))
    return make_error("{}: decoder needs a \"layer\" object", where);
  std::pair<const char*, std::string*> fields[] = {
      {"input_norm", &out.input_norm},
      {"q_proj", &out.q_proj},
      {"k_proj", &out.k_proj},
      {"v_proj", &out.v_proj},
      {"q_bias", &out.q_bias},
      {"k_bias", &out.k_bias},
      {"v_bias", &out.v_bias},
      {"q_norm", &out.q_norm},
      {"k_norm", &out.k_norm},
      {"o_proj", &out.o_proj},
      {"post_attention_norm", &out.post_attention_norm},
      {"gate_proj", &out.gate_proj},
      {"up_proj", &out.up_proj},
      {"down_proj", &out.down_proj}};
  for (auto kv : l)
    if (kv.key != "comment" && std::none_of(std::begin(fields), std::end(fields),
                                            [&](const auto& f) { return kv.key == f.first; }))
      return unknown_key(kv.key, where + " decoder layer");
  for (auto& [key, dst] : fields) FC_TRY(str(l, key, *dst));
  for (const std::string* required :
       {&out.embed_tokens, &out.final_norm, &out.input_norm, &out.q_proj, &out.k_proj, &out.v_proj,
        &out.o_proj, &out.post_attention_norm, &out.gate_proj, &out.up_proj, &out.down_proj})
    if (required->empty())
      return make_error("{}: decoder must name embed_tokens, final_norm and every projection",
                        where);
  return ok_status();
}

Status parse_norms(Object a, std::vector<NormSpec>& norms, const std::string& where) {
  simdjson::dom::array arr;
  auto e = field(a, "norms");
  if (!e || e->get_array().get(arr) || arr.size() == 0)
    return make_error("{}: \"norms\" must be a non-empty array", where);
  for (Element el : arr) {
    Object n;
    std::optional<std::string_view> role, tensor;
    if (el.get_object().get(n) || !(role = string_field(n, "role")) ||
        !(tensor = string_field(n, "tensor")))
      return make_error("{}: every norm needs \"role\" and \"tensor\" strings", where);
    NormSpec s;
    s.role = *role;
    s.tensor = *tensor;
    std::string nw = where + " norm \"" + printable(s.role) + "\"";
    FC_TRY(known_keys(n, {"role", "tensor", "kind", "size"}, nw));
    FC_TRY(pick<NormKind>(n, "kind",
                          {{"block", NormKind::kBlock},
                           {"q", NormKind::kQ},
                           {"k", NormKind::kK},
                           {"final", NormKind::kFinal}},
                          s.kind, nw));
    FC_TRY(pick<NormSize>(n, "size",
                          {{"hidden", NormSize::kHidden},
                           {"head_dim", NormSize::kHeadDim},
                           {"q_proj", NormSize::kQProj},
                           {"kv_proj", NormSize::kKvProj}},
                          s.size, nw));
    norms.push_back(std::move(s));
  }
  return ok_status();
}

Result<ArchProfile> parse_profile(Element el, const std::string& source) {
  Object a;
  std::optional<std::string_view> name;
  if (el.get_object().get(a) || !(name = string_field(a, "name")))
    return make_error("{}: every architecture needs a \"name\"", source);
  ArchProfile p;
  p.name = *name;
  std::string where = source + ": architecture \"" + printable(p.name) + "\"";
  FC_TRY(known_keys(a,
                    {"name", "model_types", "tensor_prefixes", "gain_convention", "qk_norm_scope",
                     "norms", "decoder"},
                    where));
  FC_ASSIGN(types, strings(a, "model_types", where));
  p.model_types = std::move(types);
  FC_ASSIGN(prefixes, strings(a, "tensor_prefixes", where));
  p.tensor_prefixes = std::move(prefixes);
  FC_TRY(pick<GainConvention>(
      a, "gain_convention", {{"w", GainConvention::kW}, {"one_plus_w", GainConvention::kOnePlusW}},
      p.convention, where));
  FC_TRY(pick<QkNormScope>(a, "qk_norm_scope",
                           {{"none", QkNormScope::kNone},
                            {"per_head", QkNormScope::kPerHead},
                            {"whole_projection", QkNormScope::kWholeProjection}},
                           p.qk_scope, where));
  FC_TRY(parse_norms(a, p.norms, where));
  if (auto d = field(a, "decoder")) {
    FC_TRY(parse_decoder(*d, p.decoder, where));
    p.has_decoder = true;
  }
  return p;
}

}  // namespace

// Parsed with simdjson's DOM: nlohmann's parse and tree of the built-in profiles were ~1 M
// instructions of every check (docs/PERFORMANCE.md), most of a small checkpoint's own work.
Result<ArchRegistry> ArchRegistry::parse(std::string_view text, const std::string& source) {
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // a UTF-8 BOM, as nlohmann skipped
  const simdjson::padded_string padded(text);
  simdjson::dom::parser parser;
  Element root;
  Object root_obj;
  simdjson::dom::array archs;
  std::optional<Element> list;
  if (parser.parse(padded).get(root) || root.get_object().get(root_obj) ||
      !(list = field(root_obj, "architectures")) || list->get_array().get(archs))
    return make_error("{}: expected a JSON object with an \"architectures\" array", source);
  FC_TRY(known_keys(root_obj, {"schema", "architectures"}, source));
  ArchRegistry reg;
  for (Element a : archs) {
    FC_ASSIGN(p, parse_profile(a, source));
    reg.profiles_.push_back(std::move(p));
  }
  return reg;
}

Result<ArchRegistry> ArchRegistry::load(const std::string& file) {
  if (file.empty())
    return parse(embedded_data("architectures.json"), "built-in architectures.json");
  FC_ASSIGN(text, read_small_file(file, kMaxConfigBytes));
  return parse(text, file);
}

Result<const ArchProfile*> ArchRegistry::find(const std::string& model_type,
                                              const std::string& config_path) const {
  std::string known;
  for (const auto& p : profiles_) {
    for (const auto& t : p.model_types) {
      if (t == model_type) return &p;
      known += known.empty() ? t : ", " + t;
    }
  }
  return make_error(
      "{}: unknown architecture (model_type \"{}\"); known: {}. Add a profile with "
      "--arch-profiles FILE",
      config_path, printable(model_type), known);
}

}  // namespace fusecheck
