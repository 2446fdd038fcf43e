// Hugging Face model-card front-matter for fusecheck results: a `tags:` entry the Hub can filter on
// (fused-kernels-compatible / -warning / -incompatible: the worst verdict over the profiles) and a
// `fusecheck:` block with the version, the model's revision and, per kernel profile, the verdict,
// where it came from, the static result and the measured KL. `check --format model-card` writes it
// for one profile; `db export --model-card` for every profile the database holds for a checkpoint.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace fusecheck {

struct CardProfile {
  std::string kernels;
  std::string static_verdict;  // "" when only a measurement is known
  double score = 0;
  double amplification = 0;
  std::string measured_verdict;       // "" without a probe
  std::optional<double> measured_kl;  // fused vs standard, mean KL (nats)
  std::string source;                 // "static", "probe" or "database"
  std::string verdict() const {
    return measured_verdict.empty() ? static_verdict : measured_verdict;
  }
};

struct CardInput {
  std::string model_name, revision, fingerprint, tool_version;
  std::vector<CardProfile> profiles;
};

// "---\n...---\n\n": the front-matter only; the caller appends the markdown section.
std::string render_card_front_matter(const CardInput& in);
// A markdown table of the profiles (for cards with several profiles).
std::string render_card_table(const CardInput& in);

}  // namespace fusecheck
