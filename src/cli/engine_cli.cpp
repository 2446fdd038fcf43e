#include "cli/engine_cli.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "fmt/ranges.h"
#include "kernels/numerics_profile.h"
#include "plan/plan_store.h"

namespace fusecheck::cli {

void add_engine_options(CLI::App* cmd, EngineArgs& a) {
  cmd->add_option("model", a.model_dir, "Hugging Face checkpoint directory")->required();
  cmd->add_option("--precision", a.precision,
                  "model: the standard kernels in the model's dtype; fp32: the fp32 reference")
      ->check(CLI::IsMember({"model", "fp32"}));
  cmd->add_option("--max-context", a.max_context,
                  "KV cache bound in tokens (default: the model's, capped by available memory)")
      ->check(int_in(1, INT64_MAX));
  cmd->add_flag(
      "--use-custom-kernels", a.kernels.use_custom_kernels,
      "request fused kernels; the compatibility check decides (fused, warn or fall back)");
  cmd->add_option("--kernels", a.kernels_name,
                  "fused kernel profile (data/kernels.json; default fused); implies "
                  "--use-custom-kernels (standard: the unfused path)");
  cmd->add_option("--plan", a.plan_file,
                  "run a per-layer kernel plan (fusecheck plan --out FILE) instead of one profile")
      ->check(non_empty());
  cmd->add_flag("--strict", a.kernels.strict,
                "with --use-custom-kernels: an incompatible model is an error, not a fallback");
  cmd->add_flag("--force-fused-kernels", a.kernels.force,
                "fuse whatever the check says (also FUSECHECK_FORCE_FUSED=1)");
  cmd->add_flag("--no-fusion", a.no_fusion, "run the standard kernels, whatever else is asked");
  cmd->add_option("--threads", a.threads, "threads for the projections (default: physical cores)")
      ->check(int_in(1, 1024));
  cmd->add_option("--device", a.device, "where the ops run: cpu (default) or cuda (GPU 0)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--dot", a.dot,
                  "the projections' dot product: contract (default, bit-identical on every ISA) or "
                  "bf16-pairs (opt-in: bf16 activations, AVX512-BF16; bf16 checkpoints only)")
      ->check(non_empty());
  cmd->add_flag("--persistent-decode", a.persistent_decode,
                "with --device cuda: run a fully fused decode step's layers as one persistent "
                "kernel instead of one launch per op (the same results, bit for bit)");
  cmd->add_option("--db", a.kernels.db_path,
                  "compatibility database whose measurements the decision uses (default " +
                      default_db_hint() + ")");
}

void check_engine_flags(const EngineArgs& a) {
  if (a.dot != "contract" && a.device == "cuda")
    usage_error("--dot " + a.dot + ": the CUDA backend runs the contract dot product only");
  if (a.persistent_decode && a.device != "cuda")
    usage_error("--persistent-decode applies to --device cuda");
  if (a.dot != "contract" && a.precision == "fp32")
    usage_error("--dot " + a.dot +
                ": the fp32 reference path always runs the contract; use --precision model");
  if (!a.plan_file.empty() && !a.kernels_name.empty())
    usage_error("--plan and --kernels contradict each other (a plan names its profile)");
  if (!a.plan_file.empty() && a.kernels.force)
    usage_error("--plan and --force-fused-kernels contradict each other");
  const bool fusion_asked = a.kernels.use_custom_kernels || !a.kernels_name.empty() ||
                            a.kernels.strict || a.kernels.force || !a.plan_file.empty();
  // --no-fusion is the kill switch (a wrapper may add it to any command line): it wins, but not
  // silently.
  if (a.no_fusion && fusion_asked)
    note(
        "--no-fusion wins over --kernels, --use-custom-kernels, --strict and "
        "--force-fused-kernels; the standard kernels run");
  if (a.no_fusion) return;
  if (a.kernels.strict && a.kernels.force)
    usage_error("--strict and --force-fused-kernels contradict each other");
  if (a.kernels.strict && !a.kernels.use_custom_kernels && a.kernels_name.empty())
    usage_error("--strict applies to fused kernels; add --use-custom-kernels or --kernels");
}

namespace {

// MemAvailable from /proc/meminfo, in bytes; 0 when unknown.
int64_t available_memory() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return 0;
}

}  // namespace

Result<DotChoice> resolve_dot(const std::string& name, const Model& model,
                              const std::string& model_dir) {
  FC_ASSIGN(reg, NumericsRegistry::load(""));
  FC_ASSIGN(spec, reg.find_dot(name));
  const DType dt = model.weights().dtype;
  const std::string dtype = dt == DType::BF16 ? "bf16" : dt == DType::F16 ? "f16" : "f32";
  if (std::find(spec.weights.begin(), spec.weights.end(), dtype) == spec.weights.end())
    return make_error("{}: --dot {} runs on {} weights only; this checkpoint's are {}", model_dir,
                      name, fmt::format("{}", fmt::join(spec.weights, "/")), dtype);
  return *parse_dot_choice(spec.name);
}

Result<LoadedEngine> load_engine(const EngineArgs& a) {
  FC_ASSIGN(precision, parse_precision(a.precision));
  LoadOptions load_opt;
  load_opt.threads = a.threads;
  load_opt.device = a.device;
  load_opt.persistent_decode = a.persistent_decode;
  FC_ASSIGN(model, Model::load(a.model_dir, load_opt));
  FC_ASSIGN(dot, resolve_dot(a.dot, model, a.model_dir));
  int64_t model_max = model.config().max_position_embeddings;
  if (model_max <= 0) model_max = 4096;
  const int64_t per_pos = model.new_cache(precision, 1).bytes_per_position();
  const int64_t avail = available_memory();
  // Half of what is available, so the cache never pushes the weights' pages out.
  const int64_t fits = avail > 0 ? avail / 2 / per_pos : model_max;
  int64_t ctx = a.max_context > 0 ? a.max_context : std::min(model_max, std::max<int64_t>(fits, 1));
  if (a.max_context > 0 && a.max_context > fits)
    return make_error(
        "--max-context {} needs {:.0f} MiB of KV cache but about {} MiB is available; hint: lower "
        "--max-context",
        a.max_context, double(a.max_context) * double(per_pos) / double(1 << 20), avail >> 20);
  if (const int64_t trained = model.config().max_position_embeddings; trained > 0 && ctx > trained)
    note(fmt::format(
        "--max-context {} is past the model's max_position_embeddings {}; positions beyond it "
        "were never trained",
        ctx, trained));
  KernelRequest req = a.kernels;
  if (!a.kernels_name.empty()) req.kernels = a.kernels_name, req.use_custom_kernels = true;
  // The environment's overrides, read here so the library never reads the environment.
  if (force_fused_from_env()) req.force = true;
  FC_ASSIGN(forced_status, forced_status_from_env());
  req.force_verdict = forced_status;
  if (req.force) req.use_custom_kernels = true;
  if (a.no_fusion) req = KernelRequest{};
  req.db_path = resolve_db_path(req.db_path);
  if (!a.plan_file.empty() && !a.no_fusion) {
    // The plan was measured for this checkpoint: it replaces the load-time decision.
    FC_ASSIGN(plan, plan_for_model(model, a.plan_file));
    KernelDecision d;
    d.outcome = KernelOutcome::kPlan, d.plan = std::move(plan), d.source = "plan";
    d.plan.dot = dot;
    std::fprintf(stderr, "kernels: %s (%s, from %s)\n",
                 std::string(kernel_outcome_name(d.outcome)).c_str(), d.plan.profile.c_str(),
                 a.plan_file.c_str());
    return LoadedEngine{std::move(model), precision, ctx, std::move(d)};
  }
  FC_ASSIGN(decision, decide_kernels(model, req));
  decision.plan.dot = dot;
  if (req.use_custom_kernels) {
    if (!decision.message.empty()) std::fprintf(stderr, "%s\n", decision.message.c_str());
    // A profile that fuses nothing (`--kernels standard`) runs the standard path; say so.
    const bool fused_outcome = decision.outcome != KernelOutcome::kFallback &&
                               decision.outcome != KernelOutcome::kStandard;
    const std::string outcome = fused_outcome && !decision.plan.any_fused()
                                    ? std::string("standard")
                                    : std::string(kernel_outcome_name(decision.outcome));
    std::fprintf(stderr, "kernels: %s (%s; decided in %.1f ms)\n", outcome.c_str(),
                 decision.plan.profile.c_str(), decision.check_ms);
  }
  return LoadedEngine{std::move(model), precision, ctx, std::move(decision)};
}

Result<std::vector<int32_t>> parse_token_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::string item;
  std::istringstream in(text);
  while (std::getline(in, item, ',')) {
    size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    if (b == std::string::npos)
      return make_error("--token-ids: empty item in \"{}\"", printable(text));
    std::string_view v(item.data() + b, e - b + 1);
    int64_t id = -1;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), id);
    if (ec != std::errc() || p != v.data() + v.size() || id < 0 || id > INT32_MAX)
      return make_error("--token-ids: \"{}\" is not a token id (a non-negative integer)",
                        printable(v));
    ids.push_back(static_cast<int32_t>(id));
  }
  if (ids.empty()) return make_error("--token-ids: no ids given");
  return ids;
}

Result<Tokenizer> load_tokenizer_for(const std::string& dir) {
  if (!std::ifstream(dir + "/tokenizer.json").good())
    return make_error(
        "{}/tokenizer.json: not found; the checkpoint has no tokenizer; hint: pass "
        "--token-ids instead of text",
        dir);
  return Tokenizer::load(dir);
}

Status check_tokenizer_fits(const Tokenizer& tok, const Model& m, const std::string& dir) {
  const int64_t vocab = m.config().vocab_size;
  if (tok.vocab_size() > vocab)
    return make_error(
        "{}/tokenizer.json: the tokenizer has {} tokens but config.json's vocab_size is {}; ids "
        "from {} up have no embedding (the tokenizer belongs to another model)",
        dir, tok.vocab_size(), vocab, vocab);
  return ok_status();
}

Status check_ids_fit(std::span<const int32_t> ids, const Model& m) {
  const int64_t vocab = m.config().vocab_size;
  for (int32_t id : ids)
    if (id >= vocab)
      return make_error("--token-ids: id {} is outside the model's vocabulary (0..{})", id,
                        vocab - 1);
  return ok_status();
}

void print_stats(const GenerationStats& s) {
  std::fprintf(stderr,
               "prompt %lld tok, %.1f tok/s | decode %lld tok, %.1f tok/s | first token %.0f ms\n",
               static_cast<long long>(s.prompt_tokens), s.prefill_tok_s(),
               static_cast<long long>(s.generated), s.decode_tok_s(), s.first_token_s * 1e3);
}

void add_sampling_options(CLI::App* cmd, SamplingArgs& s) {
  cmd->add_option("--temperature", s.temperature, "0 = greedy (default: generation_config.json)")
      ->check(finite_in(0.0, 100.0));
  cmd->add_option("--top-k", s.top_k, "keep the k most likely tokens (0 = off)")
      ->check(non_negative_int());
  cmd->add_option("--top-p", s.top_p, "nucleus sampling mass (1 = off)")
      ->check(finite_in(0.0, 1.0));
  cmd->add_option("--min-p", s.min_p, "drop tokens below min-p x the top probability")
      ->check(finite_in(0.0, 1.0));
  cmd->add_option("--seed", s.seed, "sampling seed (default 0)");
}

SamplingParams resolve_sampling(const SamplingArgs& s, const GenerationDefaults& d) {
  SamplingParams p = d.sampling;
  if (s.temperature) p.temperature = *s.temperature;
  if (s.top_k) p.top_k = *s.top_k;
  if (s.top_p) p.top_p = *s.top_p;
  if (s.min_p) p.min_p = *s.min_p;
  if (s.seed) p.seed = *s.seed;
  return p;
}

}  // namespace fusecheck::cli
