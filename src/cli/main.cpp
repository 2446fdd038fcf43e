// fusecheck: is this checkpoint safe to run on fused kernels? See README.md and docs/USER_GUIDE.md.
// Messages and exit codes follow one convention for every subcommand (cli/cli_util.h).
#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/commands.h"

namespace {

using namespace fusecheck::cli;  // NOLINT(google-build-using-namespace): this file is the CLI

// "fusecheck nope": CLI11 would say "A subcommand is required"; name the word and the commands.
bool unknown_command(const CLI::App& app, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return false;
  std::string names;
  for (const CLI::App* sub : app.get_subcommands({})) {
    if (sub->get_name() == argv[1]) return false;
    names += (names.empty() ? "" : ", ") + sub->get_name();
  }
  fail(kExitUsage, fmt::format("unknown command \"{}\"; the commands are {} (see fusecheck --help)",
                               argv[1], names));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fusecheck: is this model numerically safe for fused inference kernels?",
               "fusecheck"};
  app.set_version_flag("--version", std::string("fusecheck ") + FUSECHECK_VERSION);
  app.require_subcommand(1);
  int exit_code = 0;
  register_check_command(app, exit_code);
  register_fixture_command(app, exit_code);
  register_generate_command(app, exit_code);
  register_chat_command(app, exit_code);
  register_eval_command(app, exit_code);
  register_probe_command(app, exit_code);
  register_bench_command(app, exit_code);
  register_tokenize_command(app, exit_code);
  register_rebalance_command(app, exit_code);
  register_plan_command(app, exit_code);
  register_db_command(app, exit_code);
  if (unknown_command(app, argc, argv)) return kExitUsage;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    exit_code = app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    exit_code = app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    exit_code = app.exit(e);
  } catch (const CLI::ParseError& e) {
    const CLI::App* sub = app.get_subcommands().empty() ? nullptr : app.get_subcommands().front();
    return fail(kExitUsage, fmt::format("{} (see fusecheck {}--help)", e.what(),
                                        sub ? sub->get_name() + " " : ""));
  }
  // Output that could not be written is an error, whatever the command decided (a check report
  // lost to a full disk must not exit with its verdict).
  if (!stdout_ok()) {
    const int err = errno;
    return fail(kExitWriteError, fmt::format("cannot write to standard output: {}",
                                             err ? std::strerror(err) : "write error"));
  }
  return exit_code;
}
