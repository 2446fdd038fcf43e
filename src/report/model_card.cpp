#include "report/model_card.h"

#include <fmt/format.h>

namespace fusecheck {

namespace {

int severity(const std::string& v) {
  return v == "INCOMPATIBLE" ? 2 : v == "WARNING" ? 1 : 0;
}

// A YAML double-quoted scalar: the names come from the database and may hold anything printable.
std::string quoted(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) >= 32) o += c;
  }
  return o + "\"";
}

}  // namespace

std::string render_card_front_matter(const CardInput& in) {
  int worst = 0;
  for (const auto& p : in.profiles) worst = std::max(worst, severity(p.verdict()));
  const char* tag[] = {"fused-kernels-compatible", "fused-kernels-warning",
                       "fused-kernels-incompatible"};
  const char* status[] = {"COMPATIBLE", "WARNING", "INCOMPATIBLE"};
  std::string o = "---\ntags:\n- " + std::string(tag[worst]) + "\nfusecheck:\n";
  o += fmt::format("  status: {}\n", status[worst]);
  o += fmt::format("  version: {}\n", quoted(in.tool_version));
  if (!in.model_name.empty()) o += fmt::format("  model: {}\n", quoted(in.model_name));
  if (!in.revision.empty()) o += fmt::format("  revision: {}\n", quoted(in.revision));
  o += fmt::format("  fingerprint: {}\n", quoted(in.fingerprint));
  o += "  profiles:\n";
  for (const auto& p : in.profiles) {
    o += fmt::format("    {}:\n      verdict: {}\n      source: {}\n", quoted(p.kernels),
                     p.verdict(), p.source);
    if (!p.static_verdict.empty())
      o += fmt::format(
          "      static_verdict: {}\n      score: {:.3f}\n      amplification: {:.2f}\n",
          p.static_verdict, p.score, p.amplification);
    if (!p.measured_verdict.empty())
      o += fmt::format("      measured_verdict: {}\n", p.measured_verdict);
    if (p.measured_kl) o += fmt::format("      measured_kl: {:.4g}\n", *p.measured_kl);
  }
  return o + "---\n\n";
}

std::string render_card_table(const CardInput& in) {
  std::string o =
      "## Fused-kernel compatibility (fusecheck)\n\n"
      "| kernel profile | verdict | from | static (score) | measured KL, fused vs standard |\n"
      "|---|---|---|---|---:|\n";
  for (const auto& p : in.profiles)
    o += fmt::format(
        "| `{}` | **{}** | {} | {} | {} |\n", p.kernels, p.verdict(), p.source,
        p.static_verdict.empty() ? "-" : fmt::format("{} ({:.2f})", p.static_verdict, p.score),
        p.measured_kl ? fmt::format("{:.3g}", *p.measured_kl) : "-");
  o += fmt::format("\nChecked with fusecheck {}", in.tool_version);
  if (!in.fingerprint.empty()) o += fmt::format(" (checkpoint fingerprint `{}`)", in.fingerprint);
  return o + ".\n";
}

}  // namespace fusecheck
