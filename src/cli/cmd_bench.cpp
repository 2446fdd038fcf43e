// `fusecheck bench MODEL [--prompt-tokens 128] [--gen-tokens 64] [--threads N] [--kernels NAME]
// [--repeat R] [--compare] [--dot NAME] [--json]`: prefill and decode speed of the engine on a
// model (medians and spread over R passes), resident memory, and the fraction of the decode
// roofline reached: every weight is streamed once per decoded token, so bandwidth / weight bytes
// bounds decode tokens/s; the bandwidth is measured here, on the machine that runs the benchmark.
// --compare runs the standard and the fused plan alternately, side by side, and reports their
// ratio; --plan FILE runs a per-layer plan (fusecheck plan) beside both all-standard and all-fused
// (its profile).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/commands.h"
#include "cli/engine_cli.h"
#include "kernels/cpu/gemm_bf16dot.h"
#include "kernels/cpu/simd.h"
#include "plan/plan.h"

namespace fusecheck::cli {

namespace {

struct BenchArgs {
  EngineArgs engine;
  int64_t prompt_tokens = 128, gen_tokens = 64, repeat = 3;
  bool json = false, compare = false;
  std::string isa;  // restrict the SIMD kernels to one Highway target, e.g. AVX2
};

// VmRSS / VmHWM of this process, in bytes.
int64_t proc_status_bytes(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string k;
  while (f >> k) {
    if (k == key) {
      int64_t kb = 0;
      f >> kb;
      return kb * 1024;
    }
    f.ignore(1 << 20, '\n');
  }
  return 0;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Pass {
  double prefill_tok_s = 0, decode_tok_s = 0;
  int64_t kv_bytes_per_token = 0, kv_resident_bytes = 0;  // the pass's cache, as stored
};

Result<Pass> run_pass(const Model& m, Precision p, const KernelPlan& plan,
                      const std::vector<int32_t>& prompt, int64_t gen) {
  KvCache cache = m.new_cache(p, static_cast<int64_t>(prompt.size()) + gen + 1, &plan);
  std::vector<float> logits;
  Activations ws;
  const double t0 = now_s();
  FC_TRY(m.forward(prompt, p, cache, LogitsFor::kLast, logits, nullptr, &plan, &ws));
  const double t1 = now_s();
  // Greedy decode; on a GPU each step is a replayed graph with the argmax on the device, as
  // generate runs it (Model::decode_greedy).
  DecodeGraph graph;
  int32_t next = argmax(logits);
  for (int64_t i = 0; i < gen; ++i) {
    if (m.backend().supports_graphs()) {
      FC_TRY(m.decode_greedy(next, p, cache, plan, ws, graph, &next));
      continue;
    }
    FC_TRY(m.forward({&next, 1}, p, cache, LogitsFor::kLast, logits, nullptr, &plan, &ws));
    next = argmax(logits);
  }
  const double t2 = now_s();
  return Pass{prompt.size() / (t1 - t0), gen / (t2 - t1), cache.bytes_per_position(),
              cache.resident_bytes()};
}

struct Summary {
  double median = 0, min = 0, max = 0;
  // (max - min) / median: above kWideSpread the figures are not worth comparing.
  double spread() const { return median > 0 ? (max - min) / median : 0; }
};
constexpr double kWideSpread = 0.15;
// The median: the middle value, or the mean of the middle two of an even count.
Summary summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  return {median, v.front(), v.back()};
}

// --isa: restrict the SIMD kernels to one Highway target, chosen once before any kernel runs.
Status apply_isa(const std::string& isa) {
  if (isa.empty()) return ok_status();
  std::string known;
  bool found = false;
  for (const std::string& t : cpu::simd_target_names()) {
    known += (known.empty() ? "" : ", ") + t;
    if (isa == t) found = cpu::use_only_simd_target(t);
  }
  if (!found) return make_error("--isa {}: not a target this CPU runs ({})", isa, known);
  return ok_status();
}

// A plan to time, its key in the JSON ("" for the headline one) and its passes' figures.
struct Timed {
  std::string kernels, role;
  KernelPlan plan;
  std::vector<double> prefill = {}, decode = {};  // tok/s per pass
};

// What the load-time decision chose, and with --compare the other one; with --plan, the plan,
// then all-standard and all-fused (its profile).
Result<std::vector<Timed>> plans_to_time(const BenchArgs& a, const LoadedEngine& engine) {
  const Model& m = engine.model;
  const bool with_plan = !a.engine.plan_file.empty() && !a.engine.no_fusion;
  if (!a.compare && !with_plan)
    return std::vector<Timed>{{engine.kernels.plan.profile, "", engine.kernels.plan}};
  FC_ASSIGN(reg, NumericsRegistry::load(""));
  std::string fused_name =
      a.engine.kernels_name.empty() ? std::string("fused") : a.engine.kernels_name;
  if (with_plan) fused_name = engine.kernels.plan.profile.substr(5);  // "plan:NAME"
  FC_ASSIGN(prof, reg.find(fused_name));
  const KernelPlan fused = KernelPlan::from_profile(prof, m.config().num_layers);
  if (with_plan)
    return std::vector<Timed>{{engine.kernels.plan.profile, "", engine.kernels.plan},
                              {"standard", "standard", m.standard_plan()},
                              {fused_name, "fused", fused}};
  return std::vector<Timed>{{"standard", "", m.standard_plan()}, {fused_name, "fused", fused}};
}

// One untimed pass of every plan warms the page cache, the pool and what each plan makes on its
// first run (on the GPU: the fused prefill's split buffers and cuBLASLt plans, which made the first
// timed fused pass an outlier); then the plans alternate, pass by pass, so drift hits them alike.
// Returns the first plan's cache figures of its last pass.
Result<Pass> time_passes(const BenchArgs& a, const LoadedEngine& engine,
                         const std::vector<int32_t>& prompt, std::vector<Timed>& plans) {
  const Model& m = engine.model;
  for (const Timed& t : plans) FC_TRY(run_pass(m, engine.precision, t.plan, prompt, 2));
  Pass first;
  for (int64_t r = 0; r < a.repeat; ++r)
    for (size_t i = 0; i < plans.size(); ++i) {
      FC_ASSIGN(pass, run_pass(m, engine.precision, plans[i].plan, prompt, a.gen_tokens));
      plans[i].prefill.push_back(pass.prefill_tok_s);
      plans[i].decode.push_back(pass.decode_tok_s);
      if (i == 0) first = pass;
    }
  return first;
}

// The figures of every timed plan (the first at the top level, the others under their role),
// their ratios, and the spread warning's flag.
nlohmann::json plan_figures(const std::vector<Timed>& plans, double roofline, bool with_plan,
                            bool compare) {
  nlohmann::json j;
  bool wide = false;
  for (const Timed& t : plans) {
    const Summary p = summarize(t.prefill), d = summarize(t.decode);
    nlohmann::json r = {{"kernels", t.kernels},
                        {"prefill_tokens_per_s", p.median},
                        {"prefill_min_max", {p.min, p.max}},
                        {"decode_tokens_per_s", d.median},
                        {"decode_min_max", {d.min, d.max}},
                        {"decode_ms_per_token", 1e3 / d.median},
                        {"roofline_fraction", d.median / roofline},
                        {"decode_spread", d.spread()},
                        {"prefill_spread", p.spread()}};
    wide = wide || d.spread() > kWideSpread || p.spread() > kWideSpread;
    if (t.role.empty())
      j.update(r);
    else
      j[t.role] = r;
  }
  auto ratio = [&](const nlohmann::json& x, const nlohmann::json& y, const char* key) {
    return x[key].get<double>() / y[key].get<double>();
  };
  if (with_plan)
    for (const char* other : {"standard", "fused"}) {
      j[fmt::format("plan_over_{}_decode", other)] = ratio(j, j[other], "decode_tokens_per_s");
      j[fmt::format("plan_over_{}_prefill", other)] = ratio(j, j[other], "prefill_tokens_per_s");
    }
  if (compare && !with_plan) {
    j["fused_over_standard_decode"] = ratio(j["fused"], j, "decode_tokens_per_s");
    j["fused_over_standard_prefill"] = ratio(j["fused"], j, "prefill_tokens_per_s");
  }
  j["wide_spread"] = wide;
  return j;
}

void print_text(const BenchArgs& a, const Model& m, const nlohmann::json& j, bool with_plan) {
  // The backend names what runs: "cpu AVX3, 2 threads" or "cuda NVIDIA H200".
  std::printf("fusecheck bench: %s (%s, %s, dot %s)\n", a.engine.model_dir.c_str(),
              a.engine.precision.c_str(), m.backend().name().c_str(),
              j["dot"].get<std::string>().c_str());
  auto line = [&](const nlohmann::json& r) {
    std::printf(
        "  %-22s prefill %7.1f tok/s [%.1f, %.1f]  decode %6.2f tok/s [%.2f, %.2f]  %.1f ms/tok  "
        "%.0f%% of roofline\n",
        r["kernels"].get<std::string>().c_str(), r["prefill_tokens_per_s"].get<double>(),
        r["prefill_min_max"][0].get<double>(), r["prefill_min_max"][1].get<double>(),
        r["decode_tokens_per_s"].get<double>(), r["decode_min_max"][0].get<double>(),
        r["decode_min_max"][1].get<double>(), r["decode_ms_per_token"].get<double>(),
        100 * r["roofline_fraction"].get<double>());
  };
  line(j);
  if (with_plan) {
    line(j["standard"]), line(j["fused"]);
    std::printf(
        "  plan / standard: decode %.2fx, prefill %.2fx; plan / fused: decode %.2fx, "
        "prefill %.2fx\n",
        j["plan_over_standard_decode"].get<double>(), j["plan_over_standard_prefill"].get<double>(),
        j["plan_over_fused_decode"].get<double>(), j["plan_over_fused_prefill"].get<double>());
  } else if (a.compare) {
    line(j["fused"]);
    std::printf("  fused / standard: decode %.2fx, prefill %.2fx\n",
                j["fused_over_standard_decode"].get<double>(),
                j["fused_over_standard_prefill"].get<double>());
  }
  std::printf(
      "  %lld prompt tokens, %lld generated, median of %lld pass%s [min, max]\n"
      "  weights %.2f GB, resident %.2f GB (peak %.2f GB); read bandwidth %.1f GB/s -> decode "
      "roofline %.1f tok/s\n"
      "  KV cache %s: %lld bytes per token, %.2f MB resident\n",
      static_cast<long long>(a.prompt_tokens), static_cast<long long>(a.gen_tokens),
      static_cast<long long>(a.repeat), a.repeat == 1 ? "" : "es",
      j["weight_bytes"].get<double>() / 1e9, j["resident_bytes"].get<double>() / 1e9,
      j["peak_resident_bytes"].get<double>() / 1e9, j["bandwidth_gbs"].get<double>(),
      j["decode_roofline_tokens_per_s"].get<double>(), j["kv_format"].get<std::string>().c_str(),
      j["kv_bytes_per_token"].get<long long>(), j["kv_bytes"].get<double>() / 1e6);
  if (j["persistent_decode"].get<bool>())
    std::printf("  fused decode: the layers of a step as one persistent launch\n");
}

int run_bench(const BenchArgs& a) {
  auto fail = [](const Error& e) {
    std::fprintf(stderr, "fusecheck: error: %s\n", e.message.c_str());
    return kExitInputError;
  };
  if (auto st = apply_isa(a.isa); !st) return fail(st.error());
  auto engine = load_engine(a.engine);
  if (!engine.ok()) return fail(engine.error());
  const Model& m = engine->model;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(m.config().vocab_size - 1));
  std::vector<int32_t> prompt(static_cast<size_t>(a.prompt_tokens));
  for (auto& x : prompt) x = id(rng);
  auto plans = plans_to_time(a, *engine);
  if (!plans.ok()) return fail(plans.error());
  // --dot applies to every timed plan (load_engine set it on the decided one).
  for (Timed& t : *plans) t.plan.dot = engine->kernels.plan.dot;
  auto first = time_passes(a, *engine, prompt, *plans);
  if (!first.ok()) return fail(first.error());
  const int64_t rss = proc_status_bytes("VmRSS:"), peak = proc_status_bytes("VmHWM:");
  const double bw = m.backend().read_bandwidth_gbs();  // allocates 512 MiB
  const double roofline = bw * 1e9 / static_cast<double>(m.weight_bytes());
  const bool with_plan = !a.engine.plan_file.empty() && !a.engine.no_fusion;

  nlohmann::json j = plan_figures(*plans, roofline, with_plan, a.compare);
  j["model"] = a.engine.model_dir;
  j["threads"] = m.backend().threads();
  j["backend"] = m.backend().name();
  j["simd_target"] = cpu::simd_target_name();
  j["dot"] = std::string(dot_choice_name(engine->kernels.plan.dot));
  if (engine->kernels.plan.dot == DotChoice::kBf16Pairs) j["dot_impl"] = cpu::bf16dot_impl_name();
  j["precision"] = a.engine.precision;
  j["prompt_tokens"] = a.prompt_tokens;
  j["gen_tokens"] = a.gen_tokens;
  j["repeat"] = a.repeat;
  j["weight_bytes"] = m.weight_bytes();
  j["resident_bytes"] = rss;  // after the passes, before the bandwidth probe
  j["peak_resident_bytes"] = peak;
  j["bandwidth_gbs"] = bw;
  j["decode_roofline_tokens_per_s"] = roofline;
  const auto kvf = (*plans)[0].plan.kv_formats();
  j["kv_format"] = std::all_of(kvf.begin(), kvf.end(), [&](auto& f) { return f == kvf[0]; })
                       ? kv_layer_format_name(kvf[0])
                       : std::string("per-layer");
  j["kv_bytes_per_token"] = first->kv_bytes_per_token;
  j["kv_bytes"] = first->kv_resident_bytes;
  // Whether a timed plan's decode steps ran their layers as one persistent launch (a fully fused
  // plan on the GPU; each recorded step counts once, its replays not at all).
  j["persistent_decode"] = m.backend().decoder_stack_runs() > 0;
  if (j["wide_spread"].get<bool>())
    std::fprintf(stderr,
                 "fusecheck bench: warning: the passes differ by more than %.0f%% of their median "
                 "(a busy machine?); raise --repeat or rerun on an idle one\n",
                 100 * kWideSpread);
  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  print_text(a, m, j, with_plan);
  return 0;
}

}  // namespace

void register_bench_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Prefill and decode speed of the engine on a model");
  add_engine_options(cmd, a->engine);
  cmd->add_option("--prompt-tokens", a->prompt_tokens, "prompt length (default 128)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--gen-tokens", a->gen_tokens, "tokens decoded per pass (default 64)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--repeat", a->repeat, "timed passes (default 3)")->check(CLI::Range(1, 1000));
  cmd->add_flag("--compare", a->compare,
                "time the standard and the fused plan (--kernels, default fused) side by side");
  cmd->add_flag("--json", a->json, "print one JSON object");
  cmd->add_option("--isa", a->isa,
                  "run the SIMD kernels on one Highway target only (e.g. AVX2; results are "
                  "bit-identical on every target)");
  cmd->callback([a, &exit_code] {
    check_engine_flags(a->engine);
    exit_code = run_bench(*a);
  });
}

}  // namespace fusecheck::cli
