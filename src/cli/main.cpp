// fusecheck: is this checkpoint safe to run on fused kernels? See README.md and docs/USER_GUIDE.md.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"fusecheck: is this model numerically safe for fused inference kernels?",
               "fusecheck"};
  app.set_version_flag("--version", std::string("fusecheck ") + FUSECHECK_VERSION);
  app.require_subcommand(1);
  int exit_code = 0;
  fusecheck::cli::register_check_command(app, exit_code);
  fusecheck::cli::register_fixture_command(app, exit_code);
  fusecheck::cli::register_generate_command(app, exit_code);
  fusecheck::cli::register_chat_command(app, exit_code);
  fusecheck::cli::register_eval_command(app, exit_code);
  fusecheck::cli::register_probe_command(app, exit_code);
  fusecheck::cli::register_bench_command(app, exit_code);
  fusecheck::cli::register_tokenize_command(app, exit_code);
  fusecheck::cli::register_db_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "fusecheck: usage error: %s (see fusecheck --help)\n", e.what());
    return fusecheck::cli::kExitUsage;
  }
  return exit_code;
}
