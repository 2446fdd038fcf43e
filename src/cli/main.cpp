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

// Every subcommand, by the name it registers. Building all eleven subcommands' options costs
// ~2.4 M instructions, most of a `check`'s start-up (docs/PERFORMANCE.md): when argv[1] names one,
// only that one is built; `--version` alone builds none. Help and unknown words build them all, so
// `fusecheck --help` lists every command (Cli.EachSubcommandAloneParsesAsWithAll holds each name to
// its command).
struct Command {
  const char* name;
  void (*add)(CLI::App&, int&);
};
constexpr Command kCommands[] = {{"check", register_check_command},
                                 {"fixture", register_fixture_command},
                                 {"generate", register_generate_command},
                                 {"chat", register_chat_command},
                                 {"eval", register_eval_command},
                                 {"probe", register_probe_command},
                                 {"bench", register_bench_command},
                                 {"tokenize", register_tokenize_command},
                                 {"rebalance", register_rebalance_command},
                                 {"plan", register_plan_command},
                                 {"db", register_db_command}};

void register_commands(CLI::App& app, int& exit_code, int argc, char** argv) {
  // `fusecheck --version` alone prints one line and needs no command: building them all was
  // ~2.5 M of its 5.5 M instructions.
  if (argc == 2 && std::strcmp(argv[1], "--version") == 0) return;
  if (argc >= 2)
    for (const Command& c : kCommands)
      if (std::strcmp(argv[1], c.name) == 0) return c.add(app, exit_code);
  for (const Command& c : kCommands) c.add(app, exit_code);
}

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

// The CPU-feature table that __builtin_cpu_supports reads (the engine's bf16-pair dot) is filled
// here, not by libgcc's start-up constructor, which the `fusecheck` program leaves out
// (cmake/static_runtime.cmake: a dozen CPUID traps on a VM, a tenth of `--version`). `--version`
// and `check` never ask for CPU features (check --probe runs the engine: cmd_check.cpp fills the
// table then); every other command might. Idempotent, and harmless where the constructor ran.
void init_cpu_features(int argc, char** argv) {
#if defined(__x86_64__) || defined(__i386__)
  if (argc >= 2 && (std::strcmp(argv[1], "--version") == 0 || std::strcmp(argv[1], "check") == 0))
    return;
  __builtin_cpu_init();
#else
  (void)argc, (void)argv;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  init_cpu_features(argc, argv);
  CLI::App app{"fusecheck: is this model numerically safe for fused inference kernels?",
               "fusecheck"};
  app.set_version_flag("--version", std::string("fusecheck ") + FUSECHECK_VERSION);
  app.require_subcommand(1);
  int exit_code = 0;
  register_commands(app, exit_code, argc, argv);
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
