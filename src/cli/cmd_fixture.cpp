// `fusecheck fixture`: CLI glue over write_fixture (src/fixture). Flag values are parsed here so a
// malformed one is a usage error (exit 64) with a one-line message, not a CLI11 exception.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "fixture/fixture.h"

namespace fusecheck::cli {

namespace {

struct FixtureArgs {
  std::string out_dir, profile, seed = "0", dtype = "bf16", shard_size, profiles_file;
  std::vector<std::string> k_norm_max, q_norm_max;
  bool tiny = false, sparse = false, force = false, list = false, compensate_q = false;
};

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "4GB", "500MB", "2GiB", "1.5GB", "123": decimal units as transformers' max_shard_size reads
// them (GB = 10^9), binary ones with an i (GiB = 2^30); case is ignored.
std::optional<uint64_t> parse_size(const std::string& text) {
  std::string s = lower(text);
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) return std::nullopt;
  char* end = nullptr;
  std::string num = s.substr(0, i);
  double v = std::strtod(num.c_str(), &end);
  if (end != num.c_str() + num.size()) return std::nullopt;
  static const std::map<std::string, double> kUnits = {
      {"", 1},         {"b", 1},        {"k", 1e3},      {"kb", 1e3},    {"m", 1e6},
      {"mb", 1e6},     {"g", 1e9},      {"gb", 1e9},     {"t", 1e12},    {"tb", 1e12},
      {"kib", 0x1p10}, {"mib", 0x1p20}, {"gib", 0x1p30}, {"tib", 0x1p40}};
  auto u = kUnits.find(s.substr(i));
  if (u == kUnits.end()) return std::nullopt;
  double bytes = std::round(v * u->second);
  if (!(bytes >= 1) || bytes > 0x1p62) return std::nullopt;
  return uint64_t(bytes);
}

// "L=V[,L=V...]" items, possibly repeated: layer -> value.
std::optional<std::map<int64_t, double>> parse_layer_values(const std::vector<std::string>& items,
                                                            std::string& bad) {
  std::map<int64_t, double> out;
  for (const auto& item : items) {
    size_t start = 0;
    while (start <= item.size()) {
      size_t comma = item.find(',', start);
      std::string part = item.substr(start, comma == std::string::npos ? comma : comma - start);
      start = comma == std::string::npos ? item.size() + 1 : comma + 1;
      bad = part;
      size_t eq = part.find('=');
      if (eq == std::string::npos) return std::nullopt;
      int64_t layer = 0;
      auto [p, ec] = std::from_chars(part.data(), part.data() + eq, layer);
      if (ec != std::errc() || p != part.data() + eq || eq == 0) return std::nullopt;
      std::string vs = part.substr(eq + 1);
      char* end = nullptr;
      double v = std::strtod(vs.c_str(), &end);
      if (vs.empty() || end != vs.c_str() + vs.size() || !std::isfinite(v)) return std::nullopt;
      out[layer] = v;  // range and sign are the library's to judge, with the model in hand
    }
  }
  return out;
}

std::string human_bytes(uint64_t n) {
  if (n < 1000) return fmt::format("{} B", n);
  const char* units[] = {"kB", "MB", "GB", "TB", "PB"};
  double v = double(n) / 1000;
  size_t u = 0;
  while (v >= 1000 && u + 1 < std::size(units)) v /= 1000, ++u;
  return fmt::format("{:.1f} {}", v, units[u]);
}

int usage_error(const std::string& msg) {
  fmt::print(stderr, "fusecheck: error: {}\n", msg);
  return kExitUsage;
}

int run_fixture(const FixtureArgs& a) {
  if (a.list) {
    if (!a.profiles_file.empty())
      return usage_error("--list shows the built-in profiles; see the \"profiles\" array of " +
                         a.profiles_file + " for its own");
    for (const auto& n : fixture_profile_names()) fmt::print("{}\n", n);
    return 0;
  }
  if (a.out_dir.empty()) return usage_error("fixture: OUT_DIR is required");
  if (a.profile.empty())
    return usage_error("fixture: --profile NAME is required (--list shows the profiles)");

  FixtureOptions o;
  o.profile = a.profile;
  o.tiny = a.tiny;
  o.sparse = a.sparse;
  o.force = a.force;
  o.profiles_file = a.profiles_file;
  auto [p, ec] = std::from_chars(a.seed.data(), a.seed.data() + a.seed.size(), o.seed);
  if (ec != std::errc() || p != a.seed.data() + a.seed.size() || a.seed.empty())
    return usage_error("--seed: \"" + a.seed + "\" is not a non-negative integer");
  const std::string d = lower(a.dtype);
  if (d == "bf16" || d == "bfloat16")
    o.dtype = DType::BF16;
  else if (d == "f16" || d == "fp16" || d == "float16")
    o.dtype = DType::F16;
  else if (d == "f32" || d == "fp32" || d == "float32")
    o.dtype = DType::F32;
  else
    return usage_error("--dtype: \"" + a.dtype + "\" is not one of bf16, f16, f32");
  if (!a.shard_size.empty()) {
    auto s = parse_size(a.shard_size);
    if (!s)
      return usage_error("--shard-size: \"" + a.shard_size +
                         "\" is not a size (bytes, or with a unit: 500MB, 4GB, 2GiB)");
    o.shard_bytes = *s;
  }
  std::string bad;
  auto k = parse_layer_values(a.k_norm_max, bad);
  if (!k) return usage_error("--k-norm-max: \"" + bad + "\" is not LAYER=VALUE (e.g. 0=96.5)");
  auto q = parse_layer_values(a.q_norm_max, bad);
  if (!q) return usage_error("--q-norm-max: \"" + bad + "\" is not LAYER=VALUE (e.g. 0=96.5)");
  o.k_norm_max = std::move(*k);
  o.q_norm_max = std::move(*q);
  o.compensate_q = a.compensate_q;

  auto r = write_fixture(a.out_dir, o);
  if (!r.ok()) {
    fmt::print(stderr, "fusecheck: error: {}\n", r.error().message);
    return kExitInputError;
  }
  fmt::print("wrote {}: {}, {} tensors, {} file(s), {} logical\n", r->dir, o.profile,
             r->tensor_count, r->shard_count, human_bytes(r->total_bytes));
  return 0;
}

}  // namespace

void register_fixture_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<FixtureArgs>();
  CLI::App* sub = app.add_subcommand(
      "fixture", "Write a synthetic Hugging Face checkpoint (config.json + safetensors) for tests");
  sub->add_option("OUT_DIR", a->out_dir, "Output directory (created if needed)")->type_name("DIR");
  sub->add_option("--profile", a->profile, "Profile name from data/fixtures.json (see --list)")
      ->type_name("NAME");
  sub->add_flag("--tiny", a->tiny, "Test-sized widths; layer counts are kept");
  sub->add_flag("--sparse", a->sparse, "Leave matrices as file holes (zeros); norms are real");
  sub->add_flag("--force", a->force, "Overwrite a non-empty OUT_DIR (only the files written here)");
  sub->add_option("--seed", a->seed, "PRNG seed (default 0)")->type_name("N");
  sub->add_option("--dtype", a->dtype, "bf16 (default), f16 or f32")->type_name("DTYPE");
  sub->add_option("--shard-size", a->shard_size,
                  "Largest shard, e.g. 4GB, 500MB, 2GiB (default: the profile's; else one file)")
      ->type_name("BYTES");
  // One value per occurrence, so a repeated flag accumulates and never swallows OUT_DIR.
  sub->add_option("--k-norm-max", a->k_norm_max, "Planted k_norm maximum per layer: L=V[,L=V...]")
      ->type_name("L=V")
      ->allow_extra_args(false);
  sub->add_option("--q-norm-max", a->q_norm_max, "Planted q_norm maximum per layer: L=V[,L=V...]")
      ->type_name("L=V")
      ->allow_extra_args(false);
  sub->add_flag("--compensate-q", a->compensate_q,
                "Carry each planted k_norm maximum on one RoPE pair and divide that pair of q_norm "
                "by the same factor: exact logits unchanged");
  sub->add_option("--profiles", a->profiles_file, "Profiles file replacing the built-in one")
      ->type_name("FILE");
  sub->add_flag("--list", a->list, "List the built-in profiles and exit");
  sub->callback([a, &exit_code] { exit_code = run_fixture(*a); });
}

}  // namespace fusecheck::cli
