// The JSON report written directly, without nlohmann's tree: the same bytes as
// result_to_json(r).dump(2) (ResultWriter.* compares the two on real and edge-case results), at a
// fraction of the cost (building, dumping and freeing the tree was 8.7 M of the 0.6B check's 29 M
// instructions, docs/PERFORMANCE.md). nlohmann's std::map orders keys by byte value, so each
// object's fields are listed in that order; numbers go through nlohmann's own shortest-round-trip
// formatter, enums through its enum tables.
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <charconv>
#include <cmath>
#include <memory>

#include "check/result_json.h"
#include "check/result_json_enums.h"

namespace fusecheck {

namespace {

// Where a number's text already is in the output, by the number's bits: a report repeats many
// values (gains read from bf16 take few distinct values: the 0.6B report's 2,036 numbers hold
// 1,135 distinct ones), and formatting one (nlohmann's grisu2) costs ~450 instructions against
// ~20 for a copy. Direct-mapped: a collision overwrites, so the table stays small (16 KiB).
struct NumberMemo {
  struct Slot {
    uint64_t bits = 0;
    uint32_t at = 0;
    uint32_t size = 0;  // 0: empty
  };
  static constexpr size_t kSlots = 1024;
  std::unique_ptr<Slot[]> slots = std::make_unique<Slot[]>(kSlots);
  static size_t index(uint64_t bits) { return size_t((bits * 0x9E3779B97F4A7C15ull) >> 54); }
};

struct Writer {
  std::string out;
  int indent = 0;     // current depth, in spaces (nlohmann's dump(2) indents by 2 per level)
  bool valid = true;  // false once a string is not UTF-8 (nlohmann's dump throws on it)
  NumberMemo numbers;
};

// One field of an object: its key and how to write its value.
struct Field {
  std::string_view key;
  const void* value;
  void (*put)(Writer&, const void*);
};

void put(Writer& w, const std::string& s);
void put(Writer& w, double v);
void put(Writer& w, bool v);
void put(Writer& w, int64_t v);
void put(Writer& w, int v);
void put(Writer& w, uint64_t v);
template <class E>
requires std::is_enum_v<E>
void put(Writer& w, E v);
template <class T>
void put(Writer& w, const std::vector<T>& v);
void put(Writer& w, const RopeConfig& v);
void put(Writer& w, const ModelConfig& v);
void put(Writer& w, const StaticRules& v);
void put(Writer& w, const NumericsProfile& v);
void put(Writer& w, const ScoreWeights& v);
void put(Writer& w, const Thresholds& v);
void put(Writer& w, const GainStats& v);
void put(Writer& w, const NormReport& v);
void put(Writer& w, const LogitNoise& v);
void put(Writer& w, const LayerReport& v);
void put(Writer& w, const KProjRead& v);
void put(Writer& w, const RoleSummary& v);
void put(Writer& w, const Analysis& v);
void put(Writer& w, const ScoreComponent& v);
void put(Writer& w, const Finding& v);
void put(Writer& w, const Score& v);

template <class T>
Field F(std::string_view key, const T& v) {
  return {key, &v, [](Writer& w, const void* p) { put(w, *static_cast<const T*>(p)); }};
}

void newline(Writer& w) {
  // One append of a newline and the indent (the report is ~4,000 lines; depth stays below 32).
  static constexpr std::string_view kLine =
      "\n                                                                ";
  if (size_t(w.indent) < kLine.size())
    return void(w.out.append(kLine.data(), 1 + size_t(w.indent)));
  w.out += '\n';
  w.out.append(size_t(w.indent), ' ');
}

// Escapes as nlohmann's dump with ensure_ascii off: the short escapes, other control characters
// as \u00xx, everything else (UTF-8 included) as is.
void put_string(Writer& w, std::string_view s) {
  if (!simdjson::validate_utf8(s.data(), s.size())) w.valid = false;
  w.out += '"';
  // Most strings need no escape: copied whole.
  if (std::none_of(s.begin(), s.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\';
      })) {
    w.out += s;
    w.out += '"';
    return;
  }
  for (const char c : s) {
    switch (c) {
      case '"':
        w.out += "\\\"";
        break;
      case '\\':
        w.out += "\\\\";
        break;
      case '\b':
        w.out += "\\b";
        break;
      case '\f':
        w.out += "\\f";
        break;
      case '\n':
        w.out += "\\n";
        break;
      case '\r':
        w.out += "\\r";
        break;
      case '\t':
        w.out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static constexpr char kHex[] = "0123456789abcdef";
          w.out += "\\u00";
          w.out += kHex[c >> 4];
          w.out += kHex[c & 15];
        } else {
          w.out += c;
        }
    }
  }
  w.out += '"';
}

template <size_t N>
void object(Writer& w, std::array<Field, N> fields) {
  assert(std::is_sorted(fields.begin(), fields.end(),
                        [](const Field& a, const Field& b) { return a.key < b.key; }));
  w.out += '{';
  w.indent += 2;
  for (size_t i = 0; i < N; ++i) {
    newline(w);
    w.out += '"';  // keys are ASCII names: nothing to escape
    w.out += fields[i].key;
    w.out += "\": ";
    fields[i].put(w, fields[i].value);
    if (i + 1 < N) w.out += ',';
  }
  w.indent -= 2;
  newline(w);
  w.out += '}';
}

template <class... T>
auto fields(T... f) {
  return std::array<Field, sizeof...(T)>{f...};
}

void put(Writer& w, const std::string& s) {
  put_string(w, s);
}
void put(Writer& w, double v) {
  if (!std::isfinite(v)) return put_string(w, std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
  const uint64_t bits = std::bit_cast<uint64_t>(v);  // -0.0 and 0.0 differ: so do their texts
  NumberMemo::Slot& slot = w.numbers.slots[NumberMemo::index(bits)];
  if (slot.size != 0 && slot.bits == bits) {
    w.out.append(w.out, slot.at, slot.size);  // the text written for the same bits before
    return;
  }
  std::array<char, 64> buf;
  const char* end = nlohmann::detail::to_chars(buf.data(), buf.data() + buf.size(), v);
  slot = {bits, uint32_t(w.out.size()), uint32_t(end - buf.data())};
  if (w.out.size() > UINT32_MAX) slot.size = 0;  // past what a slot can point at: not kept
  w.out.append(buf.data(), size_t(end - buf.data()));
}
void put(Writer& w, bool v) {
  w.out += v ? "true" : "false";
}
template <class I>
void put_integer(Writer& w, I v) {
  char buf[24];
  w.out.append(buf, size_t(std::to_chars(buf, buf + sizeof buf, v).ptr - buf));
}
void put(Writer& w, int64_t v) {
  put_integer(w, v);
}
void put(Writer& w, int v) {
  put_integer(w, v);
}
void put(Writer& w, uint64_t v) {
  put_integer(w, v);
}
template <class E>
requires std::is_enum_v<E>
void put(Writer& w, E v) {
  const nlohmann::json j = v;  // the tables of check/result_json_enums.h
  put_string(w, j.get_ref<const std::string&>());
}
template <class T>
void put(Writer& w, const std::vector<T>& v) {
  if (v.empty()) {
    w.out += "[]";
    return;
  }
  w.out += '[';
  w.indent += 2;
  for (size_t i = 0; i < v.size(); ++i) {
    newline(w);
    put(w, v[i]);
    if (i + 1 < v.size()) w.out += ',';
  }
  w.indent -= 2;
  newline(w);
  w.out += ']';
}

// The fields of NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE in result_json.cpp, in key order (nlohmann's
// std::map orders them so; object() asserts it, ReportJsonWriter.* holds the bytes to the tree's).
void put(Writer& w, const RopeConfig& v) {
  object(w, fields(F("factor", v.factor), F("high_freq_factor", v.high_freq_factor),
                   F("low_freq_factor", v.low_freq_factor),
                   F("original_max_position_embeddings", v.original_max_position_embeddings),
                   F("theta", v.theta), F("type", v.type)));
}
void put(Writer& w, const ModelConfig& v) {
  object(w,
         fields(F("architecture", v.architecture), F("attention_bias", v.attention_bias),
                F("head_dim", v.head_dim), F("hidden_size", v.hidden_size),
                F("intermediate_size", v.intermediate_size),
                F("max_position_embeddings", v.max_position_embeddings),
                F("model_type", v.model_type), F("moe_intermediate_size", v.moe_intermediate_size),
                F("num_experts", v.num_experts), F("num_experts_per_tok", v.num_experts_per_tok),
                F("num_heads", v.num_heads), F("num_kv_heads", v.num_kv_heads),
                F("num_layers", v.num_layers), F("rms_norm_eps", v.rms_norm_eps), F("rope", v.rope),
                F("tie_word_embeddings", v.tie_word_embeddings), F("torch_dtype", v.torch_dtype),
                F("vocab_size", v.vocab_size)));
}
void put(Writer& w, const StaticRules& v) {
  object(w, fields(F("best_without_qk_norm", v.best_without_qk_norm),
                   F("incompatible_above_amplification", v.incompatible_above_amplification),
                   F("incompatible_above_depth_key_loss", v.incompatible_above_depth_key_loss),
                   F("incompatible_above_key_loss", v.incompatible_above_key_loss),
                   F("warning_above_amplification", v.warning_above_amplification),
                   F("warning_above_depth_key_loss", v.warning_above_depth_key_loss),
                   F("warning_above_floor_accumulation", v.warning_above_floor_accumulation),
                   F("warning_above_floor_key_loss", v.warning_above_floor_key_loss),
                   F("warning_above_key_loss", v.warning_above_key_loss),
                   F("warning_above_rounding", v.warning_above_rounding), F("worst", v.worst)));
}
void put(Writer& w, const NumericsProfile& v) {
  object(w,
         fields(F("accumulation_unit_roundoff", v.accumulation_unit_roundoff),
                F("activation_unit_roundoff", v.activation_unit_roundoff),
                F("description", v.description), F("fusion", v.fusion), F("kv_format", v.kv_format),
                F("kv_scale", v.kv_scale), F("name", v.name), F("static_rules", v.static_rules)));
}
void put(Writer& w, const ScoreWeights& v) {
  object(w, fields(F("amplification", v.amplification), F("extreme_layers", v.extreme_layers),
                   F("variance", v.variance), F("weight_ratio", v.weight_ratio)));
}
void put(Writer& w, const Thresholds& v) {
  object(w, fields(F("compatible_score", v.compatible_score),
                   F("extreme_weight_threshold", v.extreme_weight_threshold),
                   F("max_safe_amplification", v.max_safe_amplification),
                   F("max_safe_gain_cv", v.max_safe_gain_cv),
                   F("max_safe_weight_ratio", v.max_safe_weight_ratio),
                   F("warning_score", v.warning_score), F("weights", v.weights)));
}
void put(Writer& w, const GainStats& v) {
  object(w,
         fields(F("argmax", v.argmax), F("count_above_extreme", v.count_above_extreme),
                F("cv", v.cv), F("max_abs", v.max_abs), F("mean_abs", v.mean_abs),
                F("median_abs", v.median_abs), F("min", v.min), F("n", v.n), F("n_inf", v.n_inf),
                F("n_nan", v.n_nan), F("n_negative", v.n_negative), F("n_subnormal", v.n_subnormal),
                F("p01", v.p01), F("p05", v.p05), F("p25", v.p25), F("p75", v.p75), F("p95", v.p95),
                F("p99", v.p99), F("ratio", v.ratio), F("variance", v.variance)));
}
void put(Writer& w, const NormReport& v) {
  object(w, fields(F("kind", v.kind), F("layer", v.layer), F("role", v.role), F("stats", v.stats),
                   F("tensor", v.tensor)));
}
void put(Writer& w, const LogitNoise& v) {
  object(w, fields(F("accumulation_amplification", v.accumulation_amplification),
                   F("amplification", v.amplification),
                   F("cache_amplification", v.cache_amplification),
                   F("fp16_overflow_risk", v.fp16_overflow_risk),
                   F("key_cache_loss", v.key_cache_loss), F("max_key_estimate", v.max_key_estimate),
                   F("max_logit_sum_estimate", v.max_logit_sum_estimate),
                   F("pair_gain_product", v.pair_gain_product),
                   F("rounding_amplification", v.rounding_amplification), F("sigma", v.sigma)));
}
void put(Writer& w, const LayerReport& v) {
  object(w, fields(F("has_qk_norm", v.has_qk_norm), F("key_noise", v.key_noise),
                   F("keys_from_k_proj", v.keys_from_k_proj), F("layer", v.layer),
                   F("noise", v.noise), F("worst_head", v.worst_head)));
}
void put(Writer& w, const KProjRead& v) {
  object(w, fields(F("bytes_read", v.bytes_read), F("layers", v.layers),
                   F("layers_read", v.layers_read), F("note", v.note), F("tensor", v.tensor)));
}
void put(Writer& w, const RoleSummary& v) {
  object(w, fields(F("layers", v.layers), F("layers_above_extreme", v.layers_above_extreme),
                   F("max_layer", v.max_layer), F("max_of_max", v.max_of_max),
                   F("median_of_max", v.median_of_max), F("role", v.role)));
}
void put(Writer& w, const Analysis& v) {
  object(w, fields(F("accumulation_amplification", v.accumulation_amplification),
                   F("amplification", v.amplification),
                   F("cache_amplification", v.cache_amplification),
                   F("cumulative_amplification", v.cumulative_amplification),
                   F("depth_accumulation_amplification", v.depth_accumulation_amplification),
                   F("depth_key_loss", v.depth_key_loss),
                   F("depth_rounding_amplification", v.depth_rounding_amplification),
                   F("floor_accumulation_loss", v.floor_accumulation_loss),
                   F("floor_key_loss", v.floor_key_loss), F("head_dim", v.head_dim),
                   F("k_proj", v.k_proj), F("key_cache_loss", v.key_cache_loss),
                   F("key_loss_layer", v.key_loss_layer), F("layers", v.layers),
                   F("model_unit_roundoff", v.model_unit_roundoff), F("norms", v.norms),
                   F("num_layers", v.num_layers), F("roles", v.roles),
                   F("rounding_amplification", v.rounding_amplification),
                   F("worst_layer", v.worst_layer)));
}
void put(Writer& w, const ScoreComponent& v) {
  object(w, fields(F("metric", v.metric), F("name", v.name), F("score", v.score),
                   F("threshold", v.threshold), F("weight", v.weight)));
}
void put(Writer& w, const Finding& v) {
  object(w, fields(F("layer", v.layer), F("message", v.message), F("severity", v.severity)));
}
void put(Writer& w, const Score& v) {
  object(w, fields(F("components", v.components), F("findings", v.findings), F("issues", v.issues),
                   F("recommendations", v.recommendations), F("total", v.total),
                   F("verdict", v.verdict)));
}
void put_result(Writer& w, const CheckResult& v) {
  object(w,
         fields(F("analysis", v.analysis), F("architecture", v.architecture),
                F("cache_note", v.cache_note), F("checker_version", v.checker_version),
                F("config", v.config), F("fingerprint", v.fingerprint),
                F("from_cache", v.from_cache), F("gain_convention", v.gain_convention),
                F("kernels", v.kernels), F("model_path", v.model_path),
                F("model_type", v.model_type), F("overridden", v.overridden), F("schema", v.schema),
                F("score", v.score), F("thresholds", v.thresholds), F("verdict", v.verdict)));
}

}  // namespace

std::string result_to_json_text(const CheckResult& r) {
  Writer w;
  w.out.reserve(64 * 1024 + 1024 * r.analysis.norms.size());
  put_result(w, r);
  // Not UTF-8 (a model path of other bytes): nlohmann's dump decides, as it did before.
  if (!w.valid) return result_to_json(r).dump(2);
  return std::move(w.out);
}

}  // namespace fusecheck
