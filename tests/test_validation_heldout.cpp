// The static screen against the probe's measurements on the held-out part of the validation zoo
// (docs/VALIDATION.md). docs/validation/heldout.csv holds, per (model, profile), how the model is
// made and what the probe measured; the measurement is the oracle. Each model is made again (the
// fixture generator is deterministic; sparse, with k_proj kept, which the check reads), the
// current check is run, and:
// - no kernel-specific profile calls COMPATIBLE what was measured INCOMPATIBLE (a rule change
//   that creates a false negative fails here);
// - hard false positives (INCOMPATIBLE, measured COMPATIBLE) stay at most 5% of the
//   measured-COMPATIBLE pairs per profile, and soft ones (WARNING) at most 20% for the profiles
//   that meet that target (the lossless ones and fp8; docs/VALIDATION.md gives the int8 figures);
// - the verdict equals the one committed in the CSV, so the documented matrices are the code's.
// A second test pins data/kernels.json's rules to the fit the study committed (docs/validation/
// fit.json).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "check/check.h"
#include "fixture/fixture.h"
#include "testing.h"

namespace fusecheck {
namespace {

using Row = std::map<std::string, std::string>;

// The study's CSVs have no quoted fields (names and paths carry no commas).
std::vector<Row> read_csv(const std::string& path) {
  std::ifstream f(path);
  std::vector<Row> rows;
  std::string line;
  std::vector<std::string> header;
  auto split = [](const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string x;
    while (std::getline(ss, x, ',')) out.push_back(x);
    if (!s.empty() && s.back() == ',') out.emplace_back();
    return out;
  };
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (header.empty()) {
      header = split(line);
      continue;
    }
    auto cells = split(line);
    Row r;
    for (size_t i = 0; i < header.size() && i < cells.size(); ++i) r[header[i]] = cells[i];
    rows.push_back(std::move(r));
  }
  return rows;
}

std::string source(const std::string& rel) {
  return std::string(FUSECHECK_SOURCE_DIR) + "/" + rel;
}

struct Counts {
  int compatible = 0, incompatible = 0, hard_fp = 0, soft_fp = 0, fn = 0;
};

TEST(ValidationHeldOut, NoFalseNegativesAndFewFalseAlarms) {
  const auto rows = read_csv(source("docs/validation/heldout.csv"));
  ASSERT_GT(rows.size(), 300u) << "docs/validation/heldout.csv is missing or short";
  testing::TempDir tmp;
  std::map<std::string, std::string> dirs;  // model -> checkpoint directory ("" = not available)
  std::map<std::string, Counts> by_profile;
  std::vector<std::string> missed, changed;
  int skipped = 0;
  for (const Row& r : rows) {
    const std::string& model = r.at("model");
    if (!dirs.count(model)) {
      if (r.at("source") == "fixture") {
        FixtureOptions o;
        o.profile = model;
        o.profiles_file = source("docs/validation/zoo-fixtures.json");
        o.seed = std::stoull(r.at("seed"));
        o.dtype = r.at("dtype") == "f16" ? DType::F16 : DType::BF16;
        o.compensate_q = r.at("compensate_q") == "1";
        o.sparse = true;
        o.sparse_keep_k_proj = true;
        auto w = write_fixture(tmp / model, o);
        ASSERT_TRUE(w.ok()) << model << ": " << w.error().message;
        dirs[model] = tmp / model;
      } else {
        const std::string d = source(r.at("path"));
        dirs[model] = std::filesystem::exists(d + "/config.json") ? d : "";
      }
    }
    if (dirs[model].empty()) {  // ../shared absent: those rows cannot be re-derived
      ++skipped;
      continue;
    }
    CheckOptions co;
    co.kernels = r.at("profile");
    co.use_cache = false;
    auto c = check_model(dirs[model], co);
    ASSERT_TRUE(c.ok()) << model << ": " << c.error().message;
    const std::string got(verdict_name(c->verdict));
    if (got != r.at("static_verdict"))
      changed.push_back(model + " " + co.kernels + ": " + r.at("static_verdict") + " -> " + got);
    Counts& n = by_profile[co.kernels];
    const bool measured_ok = r.at("measured_verdict") == "COMPATIBLE";
    (measured_ok ? n.compatible : n.incompatible)++;
    if (measured_ok && got == "INCOMPATIBLE") ++n.hard_fp;
    if (measured_ok && got == "WARNING") ++n.soft_fp;
    // No exemption for near-ties: the probe's top-1 noise term uses the two paths' pooled rate
    // (kProbeRevision 2), so a flip of a few positions at 100% agreement is no longer measured
    // INCOMPATIBLE, and every remaining measured failure must be flagged.
    if (!measured_ok && got == "COMPATIBLE") {
      ++n.fn;
      if (co.kernels != "generic") missed.push_back(model + " " + co.kernels);
    }
  }
  if (skipped) std::fprintf(stderr, "%d rows skipped: ../shared checkpoints absent\n", skipped);
  // No held-out miss for any kernel-specific profile. fused-fp16acc's one earlier miss
  // (qk-8-64-03, f16, +1.01e-3 nats) is flagged by its accumulator rule (floor_accumulation_loss,
  // docs/ANALYSIS.md 4.15), fitted on the fit part only.
  EXPECT_TRUE(missed.empty()) << "false negatives: " << ::testing::PrintToString(missed);
  EXPECT_TRUE(changed.empty())
      << "verdicts differ from docs/validation/heldout.csv (rerun scripts/validation/"
         "run_study.sh): "
      << ::testing::PrintToString(changed);
  // Soft false positives (WARNING, measured COMPATIBLE): the 20% target is met by the lossless
  // profiles (fp16acc: 11 of 75) and fp8 (the dtype floor, floor_key_loss); not by int8 per
  // tensor or per channel,
  // whose figures docs/VALIDATION.md gives (the verdict comparison above pins them).
  for (const std::string p : {"fused", "fused-fp16acc", "fused-fp16kv", "fused-int8kv",
                              "fused-int8kv-channel", "fused-fp8kv"})
    EXPECT_GT(by_profile[p].compatible + by_profile[p].incompatible, 60) << p << ": rows missing";
  for (const auto& [profile, n] : by_profile) {
    if (profile == "generic") continue;  // the original max-gain screen, conservative by design
    EXPECT_LE(n.hard_fp, 0.05 * n.compatible) << profile << ": hard false positives";
    if (profile != "fused-int8kv" && profile != "fused-int8kv-channel") {
      EXPECT_LE(n.soft_fp, 0.20 * n.compatible) << profile << ": soft false positives";
    }
  }
}

TEST(ValidationHeldOut, KernelRulesAreTheCommittedFit) {
  std::ifstream kf(source("data/kernels.json")), ff(source("docs/validation/fit.json"));
  auto kernels = nlohmann::json::parse(kf, nullptr, false);
  auto fit = nlohmann::json::parse(ff, nullptr, false);
  ASSERT_FALSE(kernels.is_discarded());
  ASSERT_FALSE(fit.is_discarded()) << "docs/validation/fit.json";
  int compared = 0;
  for (const auto& p : kernels["profiles"]) {
    const std::string name = p["name"];
    if (!fit.contains(name)) continue;
    const auto rules = p.value("static_rules", nlohmann::json::object());
    for (const auto& [key, value] : fit[name].items()) {
      ASSERT_TRUE(rules.contains(key)) << name << ": static_rules." << key << " missing";
      EXPECT_DOUBLE_EQ(rules[key].get<double>(), value.get<double>()) << name << "." << key;
      ++compared;
    }
  }
  EXPECT_GT(compared, 0);
}

}  // namespace
}  // namespace fusecheck
