// The CLI's one convention for messages, exits and option values, shared by every subcommand:
//   errors  "fusecheck: error: MESSAGE" (one line on stderr), notes "fusecheck: note: MESSAGE";
//   exits   0 success (check: COMPATIBLE), 1/2 check verdicts, 3 the model or an input file cannot
//           be used, 64 usage error, 74 output (stdout or a --report/--out file) cannot be written.
// It also reads the environment variables the library takes as options.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "check/score.h"
#include "util/result.h"

namespace fusecheck::cli {

constexpr int kExitInputError = 3;
constexpr int kExitUsage = 64;
constexpr int kExitWriteError = 74;  // sysexits' EX_IOERR

// Prints "fusecheck: error: MESSAGE" and returns `code`.
int fail(int code, const std::string& message);
inline int input_error(const Error& e) {
  return fail(kExitInputError, e.message);
}
void note(const std::string& message);

// A usage error found after parsing (conflicting flags): main prints it and exits 64.
[[noreturn]] void usage_error(const std::string& message);

// Option validators with plain messages ("must be a positive integer, found -1").
CLI::Validator positive_int();      // 1, 2, ...
CLI::Validator non_negative_int();  // 0, 1, ...
CLI::Validator int_in(int64_t lo, int64_t hi);
CLI::Validator finite_in(double lo, double hi);  // rejects nan and inf
CLI::Validator non_empty();                      // a file name: "" is an error, not "not given"

// FUSECHECK_FORCE_STATUS as a verdict; nullopt when unset or empty; an error for other values.
Result<std::optional<Verdict>> forced_status_from_env();
// FUSECHECK_FORCE_FUSED=1.
bool force_fused_from_env();

// Whether stdout took everything written so far (flushes it). Streaming commands stop early on
// false; main turns it into exit 74.
bool stdout_ok();

}  // namespace fusecheck::cli
