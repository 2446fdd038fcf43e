#include "cli/cli_util.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "check/check.h"
#include "engine/kernel_select.h"

namespace fusecheck::cli {

int fail(int code, const std::string& message) {
  std::fprintf(stderr, "fusecheck: error: %s\n", message.c_str());
  return code;
}

void note(const std::string& message) {
  std::fprintf(stderr, "fusecheck: note: %s\n", message.c_str());
}

void usage_error(const std::string& message) {
  throw CLI::ValidationError(message);
}

namespace {

// An integer in [lo, hi], checked as text so "-1", "abc" and "1e400" all get the same message.
std::string check_int(const std::string& s, int64_t lo, int64_t hi, const std::string& what) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc() && p == s.data() + s.size() && v >= lo && v <= hi) return "";
  return fmt::format("must be {}, found \"{}\"", what, s);
}

}  // namespace

CLI::Validator positive_int() {
  return CLI::Validator(
      [](std::string& s) { return check_int(s, 1, INT32_MAX, "a positive integer"); }, "POSITIVE");
}

CLI::Validator non_negative_int() {
  return CLI::Validator(
      [](std::string& s) { return check_int(s, 0, INT32_MAX, "a non-negative integer"); },
      "NON-NEGATIVE");
}

CLI::Validator int_in(int64_t lo, int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) {
        return check_int(s, lo, hi,
                         hi == INT64_MAX ? fmt::format("an integer of at least {}", lo)
                                         : fmt::format("an integer from {} to {}", lo, hi));
      },
      fmt::format("INT in [{}, {}]", lo, hi));
}

CLI::Validator finite_in(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        if (!s.empty() && end == s.c_str() + s.size() && std::isfinite(v) && v >= lo && v <= hi)
          return "";
        return fmt::format("must be a number from {:g} to {:g}, found \"{}\"", lo, hi, s);
      },
      fmt::format("NUMBER in [{:g}, {:g}]", lo, hi));
}

CLI::Validator non_empty() {
  return CLI::Validator(
      [](std::string& s) -> std::string { return s.empty() ? "must not be empty" : ""; }, "FILE");
}

Result<std::optional<Verdict>> forced_status_from_env() {
  const char* env = std::getenv(kForceStatusEnv);
  if (!env || !*env) return std::optional<Verdict>();
  auto v = parse_verdict(env);
  if (!v) return make_error("{}: {}", kForceStatusEnv, v.error().message);
  return std::optional<Verdict>(*v);
}

bool force_fused_from_env() {
  const char* env = std::getenv(kForceFusedEnv);
  return env && std::string(env) == "1";
}

bool stdout_ok() {
  return std::fflush(stdout) == 0 && !std::ferror(stdout);
}

}  // namespace fusecheck::cli
