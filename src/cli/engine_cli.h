// Shared glue for the engine subcommands (generate, chat, eval): model/precision/context flags,
// token-id lists, tokenizer loading with helpful errors, and the stderr speed summary.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cli/cli_util.h"
#include "engine/kernel_select.h"
#include "model/generate.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/result.h"

namespace fusecheck::cli {

struct EngineArgs {
  std::string model_dir;
  std::string precision = "model";  // model | fp32
  int64_t max_context = 0;          // 0: the model's, capped by available memory
  KernelRequest kernels;            // --use-custom-kernels, --strict, --force-fused-kernels
  std::string kernels_name;         // --kernels NAME ("" = fused); giving it requests fusion
  std::string plan_file;            // --plan FILE: a per-layer plan (fusecheck plan) to run
  bool no_fusion = false;           // the one switch that turns all fusion off
  int threads = 0;                  // 0: the physical cores
  std::string device = "cpu";       // --device cpu | cuda: where the ops run
  std::string dot = "contract";     // --dot NAME: the projections' dot product (kernels.json dots)
  bool persistent_decode = false;  // --persistent-decode: a fused GPU step as one launch
};
void add_engine_options(CLI::App* cmd, EngineArgs& a);
// Usage errors (thrown as CLI::ValidationError) for contradictory kernel flags; a note when
// --no-fusion overrides fusion flags.
void check_engine_flags(const EngineArgs& a);

struct LoadedEngine {
  Model model;
  Precision precision;
  int64_t max_context;
  KernelDecision kernels;  // the load-time decision and the plan to run
};
Result<LoadedEngine> load_engine(const EngineArgs& a);
// --dot NAME for `model`: the choice, or an error when the table (data/kernels.json "dots") has
// no such name or the checkpoint's projections are of a dtype it does not run on.
Result<DotChoice> resolve_dot(const std::string& name, const Model& model,
                              const std::string& model_dir);

// "1,2,3" (spaces allowed) -> ids; each must be a non-negative 32-bit integer.
Result<std::vector<int32_t>> parse_token_ids(const std::string& text);

// The model directory's tokenizer; the error says which file is missing and suggests --token-ids.
Result<Tokenizer> load_tokenizer_for(const std::string& dir);

// A tokenizer with more tokens than the model's vocabulary would feed ids without an embedding.
Status check_tokenizer_fits(const Tokenizer& tok, const Model& m, const std::string& dir);
// Each id must index the model's embedding matrix.
Status check_ids_fit(std::span<const int32_t> ids, const Model& m);

// "prompt 12 tok, 340.1 tok/s | decode 24 tok, 51.2 tok/s | first token 35 ms" on stderr.
void print_stats(const GenerationStats& s);

// Sampling flags: unset ones keep the checkpoint's generation_config.json defaults.
struct SamplingArgs {
  std::optional<float> temperature, top_p, min_p;
  std::optional<int64_t> top_k;
  std::optional<uint64_t> seed;
};
void add_sampling_options(CLI::App* cmd, SamplingArgs& s);
SamplingParams resolve_sampling(const SamplingArgs& s, const GenerationDefaults& d);

}  // namespace fusecheck::cli
