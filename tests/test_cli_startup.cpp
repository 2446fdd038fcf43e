// The CLI builds only the subcommand that argv[1] names (src/cli/main.cpp, for the check's start-up
// time): every command that `fusecheck --help` lists must still parse and print its own help when
// it is the only one built, and a word that is no command still gets the list of all of them.
#include <gtest/gtest.h>

#include <sstream>

#include "testing.h"

namespace fusecheck {
namespace {

using testing::run_cli;

// The names under "Subcommands:" in `fusecheck --help`: "  name   description".
std::vector<std::string> listed_commands() {
  const auto help = run_cli("--help");
  EXPECT_EQ(help.exit_code, 0) << help.err;
  std::istringstream in(help.out);
  std::vector<std::string> names;
  bool in_list = false;
  for (std::string line; std::getline(in, line);) {
    if (line == "Subcommands:") {
      in_list = true;
      continue;
    }
    if (!in_list || line.size() < 3 || line.compare(0, 2, "  ") != 0 || line[2] == ' ') continue;
    names.push_back(line.substr(2, line.find(' ', 2) - 2));
  }
  return names;
}

TEST(CliStartup, EachListedCommandBuiltAloneParsesAndPrintsItsHelp) {
  const std::vector<std::string> names = listed_commands();
  ASSERT_EQ(names.size(), 11u);
  for (const std::string& n : names) {
    const auto r = run_cli(n + " --help");
    EXPECT_EQ(r.exit_code, 0) << n << ": " << r.err;
    EXPECT_NE(r.out.find("Usage: fusecheck " + n + " "), std::string::npos) << n << ":\n" << r.out;
  }
}

TEST(CliStartup, AnUnknownWordStillListsEveryCommand) {
  const auto r = run_cli("nope");
  EXPECT_EQ(r.exit_code, 64);
  for (const std::string& n : listed_commands())
    EXPECT_NE(r.err.find(n), std::string::npos) << n << " missing from: " << r.err;
}

TEST(CliStartup, ACommandBuiltAloneStillRejectsAnotherCommandsOption) {
  // `--prompt` belongs to generate: check, built alone, must refuse it as before (usage, 64).
  const auto r = run_cli("check /nonexistent --prompt hi");
  EXPECT_EQ(r.exit_code, 64) << r.err;
  EXPECT_NE(r.err.find("--prompt"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace fusecheck
