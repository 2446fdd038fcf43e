// Subcommand registration for the fusecheck CLI. Each register_* adds one subcommand to `app`; its
// callback stores the process exit status in `exit_code` (the codes: cli/cli_util.h).
#pragma once

#include <CLI/CLI.hpp>

#include "cli/cli_util.h"

namespace fusecheck::cli {

// `fusecheck check MODEL_DIR ...`: the static compatibility check (src/check).
void register_check_command(CLI::App& app, int& exit_code);

// `fusecheck fixture OUT_DIR --profile NAME ...`: writes a synthetic checkpoint (src/fixture).
void register_fixture_command(CLI::App& app, int& exit_code);

// `fusecheck generate MODEL (--prompt T | --token-ids 1,2,3)`: the engine's continuation
// (src/model).
void register_generate_command(CLI::App& app, int& exit_code);

// `fusecheck eval MODEL --token-ids ... --out F.safetensors`: logits and hidden states.
void register_eval_command(CLI::App& app, int& exit_code);

// `fusecheck chat MODEL`: interactive chat through the model's chat template.
void register_chat_command(CLI::App& app, int& exit_code);

// `fusecheck tokenize DIR (--text T | --file F | --decode IDS | --chat FILE)`: the tokenizer.
void register_tokenize_command(CLI::App& app, int& exit_code);

// `fusecheck probe MODEL [--kernels P]`: measured divergence of a fused profile (src/probe).
void register_probe_command(CLI::App& app, int& exit_code);

// `fusecheck bench MODEL`: prefill/decode speed, memory and the decode roofline.
void register_bench_command(CLI::App& app, int& exit_code);

// `fusecheck rebalance MODEL OUT`: a function-preserving rescaled checkpoint (src/repair).
void register_rebalance_command(CLI::App& app, int& exit_code);
// `fusecheck plan MODEL --kernels P`: a per-layer kernel plan within a KL budget (src/plan).
void register_plan_command(CLI::App& app, int& exit_code);
// `fusecheck db add|lookup|list|export|import|merge|rebuild`: the compatibility database (src/db).
void register_db_command(CLI::App& app, int& exit_code);
// The database path: `flag` when given, else $XDG_DATA_HOME/fusecheck/fusecheck.db or
// ~/.local/share/fusecheck/fusecheck.db (the CLI reads the environment; the library never does).
std::string resolve_db_path(const std::string& flag);
std::string default_db_hint();  // for --help: "$XDG_DATA_HOME/fusecheck/fusecheck.db"

}  // namespace fusecheck::cli
