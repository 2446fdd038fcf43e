// The engine on the GPU (LoadOptions.device = "cuda") against the engine on the CPU: greedy
// tokens must be equal for the tiny transformers checkpoints (fp32 and bf16) and for stories260K,
// whose CPU tokens are in turn llama2.c's (expected.json), in fp32 and model precision, with the
// standard and fused kernel plans. Skips when the build has no CUDA backend or no GPU is present.
//
// The data directories can be moved (the GPU machine runs a copy of the binary):
// FUSECHECK_TEST_DATA_DIR overrides tests/data, FUSECHECK_STORIES_DIR the stories260K directory.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <tuple>

#include "cuda_module_testing.h"
#include "io/safetensors.h"
#include "kernels/kernel_plan.h"
#include "kernels/numerics_profile.h"
#include "model/generate.h"
#include "testing.h"

namespace fusecheck {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = getenv(name);
  return v && *v ? std::string(v) : fallback;
}

// Loads `dir` on the GPU, or says why it cannot (then the test skips).
Result<Model> load_cuda(const std::string& dir) {
  LoadOptions o;
  o.device = "cuda";
  o.cuda_module = testing::cuda_module_path();
  return Model::load(dir, o);
}

#define FC_LOAD_CUDA_OR_SKIP(var, dir) \
  auto var = load_cuda(dir);           \
  if (!var.ok()) GTEST_SKIP() << "no GPU engine: " << var.error().message << "; skipping"

// Greedy tokens of `m` from `prompt`: up to n tokens, stopping before `stop` (if >= 0).
std::vector<int32_t> greedy(const Model& m, Precision p, const KernelPlan* plan,
                            const std::vector<int32_t>& prompt, int64_t n, int32_t stop) {
  Session s(m, p, 0, plan);
  EXPECT_TRUE(s.feed(prompt).ok());
  Sampler sampler(SamplingParams{});  // temperature 0: argmax
  std::vector<int32_t> stops;
  if (stop >= 0) stops.push_back(stop);
  auto got = s.generate(n, sampler, stops, nullptr);
  EXPECT_TRUE(got.ok()) << (got.ok() ? "" : got.error().message);
  return got.ok() ? *got : std::vector<int32_t>{};
}

// The plans compared: standard (nullptr) and the fused profiles of data/kernels.json.
std::vector<std::pair<std::string, KernelPlan>> plans(const Model& m) {
  std::vector<std::pair<std::string, KernelPlan>> out;
  auto reg = NumericsRegistry::load("");
  EXPECT_TRUE(reg.ok());
  if (!reg.ok()) return out;
  for (const char* name : {"fused", "fused-int8kv", "fused-fp8kv", "fused-int8kv-channel"}) {
    auto prof = reg->find(name);
    EXPECT_TRUE(prof.ok()) << name;
    if (prof.ok()) out.emplace_back(name, KernelPlan::from_profile(*prof, m.config().num_layers));
  }
  return out;
}

// Every precision and plan: GPU tokens == CPU tokens.
void expect_same_tokens(const Model& cpu, const Model& gpu, const std::vector<int32_t>& prompt,
                        int64_t n, int32_t stop, const std::string& what) {
  for (Precision p : {Precision::kFp32, Precision::kModel}) {
    const char* pn = p == Precision::kFp32 ? "fp32" : "model";
    const auto want = greedy(cpu, p, nullptr, prompt, n, stop);
    ASSERT_FALSE(want.empty()) << what << " " << pn;
    EXPECT_EQ(greedy(gpu, p, nullptr, prompt, n, stop), want) << what << " " << pn << " standard";
    for (const auto& [name, plan] : plans(cpu)) {
      const auto want_f = greedy(cpu, p, &plan, prompt, n, stop);
      EXPECT_EQ(greedy(gpu, p, &plan, prompt, n, stop), want_f) << what << " " << pn << " " << name;
    }
    EXPECT_TRUE(gpu.backend().status().ok()) << gpu.backend().status().error().message;
  }
}

TEST(GpuEngine, TinyQwen3GreedyEqualsCpu) {
  const std::string data = env_or("FUSECHECK_TEST_DATA_DIR", FUSECHECK_TEST_DATA);
  for (const char* dtype : {"fp32", "bf16"}) {
    const std::string dir = data + "/hf/qwen3-tiny-extreme/" + dtype;
    FC_LOAD_CUDA_OR_SKIP(gpu, dir);
    auto cpu = Model::load(dir);
    ASSERT_TRUE(cpu.ok()) << cpu.error().message;
    EXPECT_EQ(gpu->device(), "cuda");
    expect_same_tokens(*cpu, *gpu, {1, 17, 42, 99, 7, 3, 250, 64, 11}, 48, -1, dir);
  }
}

TEST(GpuEngine, Stories260KGreedyEqualsLlama2cAndCpu) {
  const std::string root = env_or("FUSECHECK_STORIES_DIR", testing::data_dir() + "/stories260K");
  FC_LOAD_CUDA_OR_SKIP(gpu, root + "/hf");
  auto cpu = Model::load(root + "/hf");
  ASSERT_TRUE(cpu.ok()) << cpu.error().message;
  auto expected = nlohmann::json::parse(testing::read_text(root + "/expected.json"));
  for (const auto& c : expected["cases"]) {
    auto prompt = c["prompt_token_ids"].get<std::vector<int32_t>>();
    auto want = c["generated_token_ids"].get<std::vector<int32_t>>();
    // run.c forwards positions 0 .. steps-1 and stops early when the argmax is BOS (1).
    const int64_t budget = c["steps"].get<int64_t>() - static_cast<int64_t>(prompt.size()) + 1;
    for (Precision p : {Precision::kFp32, Precision::kModel})  // the oracle itself, on the GPU
      EXPECT_EQ(greedy(*gpu, p, nullptr, prompt, budget, 1), want) << c["prompt"];
    expect_same_tokens(*cpu, *gpu, prompt, budget, 1, "stories260K");
  }
}

// Greedy generation on the GPU runs each decode step as a recorded, replayed graph with the argmax
// on the device (Model::decode_greedy). Against the oracle of plain forward() calls on the same
// GPU with the host argmax: the same tokens and bit-identical last logits, across the KV cache's
// regrowths (each re-records the graph) and a second turn fed after the first.
TEST(GpuEngine, GraphDecodeEqualsForwardStepByStep) {
  const std::string data = env_or("FUSECHECK_TEST_DATA_DIR", FUSECHECK_TEST_DATA);
  const std::string dir = data + "/hf/qwen3-tiny-extreme/bf16";
  FC_LOAD_CUDA_OR_SKIP(gpu, dir);
  ASSERT_TRUE(gpu->backend().supports_graphs());
  auto fused = plans(*gpu);
  ASSERT_FALSE(fused.empty());
  const KernelPlan standard = gpu->standard_plan();
  // A per-layer plan (fusecheck plan): layer 0 standard with a bf16 cache, layer 1 fused with a
  // per-channel int8 cache, the rest as fused-int8kv (per-tensor int8).
  KernelPlan mixed = fused[1].second;
  mixed.profile = "plan:fused-int8kv";
  mixed.layers[0] = standard.layers[0];
  mixed.layers[1].kv = {KvFormat::kInt8, KvScale::kPerChannel};
  for (const KernelPlan* plan :
       std::vector<const KernelPlan*>{&standard, &fused[0].second, &fused[1].second, &mixed}) {
    SCOPED_TRACE(plan->profile);
    std::vector<int32_t> prompt = {1, 17, 42, 99, 7, 3, 250, 64, 11};
    Session s(*gpu, Precision::kModel, 0, plan);
    KvCache cache = gpu->new_cache(Precision::kModel, 0, plan);
    Activations ws;
    std::vector<float> logits;
    std::vector<int32_t> history;
    for (int turn = 0; turn < 2; ++turn) {
      ASSERT_TRUE(s.feed(prompt).ok());
      Sampler greedy_sampler(SamplingParams{});
      auto got = s.generate(40, greedy_sampler, {}, nullptr);
      ASSERT_TRUE(got.ok()) << got.error().message;
      // The oracle: forward the new tokens, then one forward per emitted token but the last.
      std::vector<int32_t> fresh(prompt.begin() + static_cast<long>(history.size()), prompt.end());
      ASSERT_TRUE(gpu->forward(fresh, Precision::kModel, cache, LogitsFor::kLast, logits, nullptr,
                               plan, &ws)
                      .ok());
      std::vector<int32_t> want;
      for (int i = 0; i < 40; ++i) {
        want.push_back(argmax(logits));
        if (i + 1 == 40) break;
        ASSERT_TRUE(gpu->forward({&want.back(), 1}, Precision::kModel, cache, LogitsFor::kLast,
                                 logits, nullptr, plan, &ws)
                        .ok());
      }
      EXPECT_EQ(*got, want) << "turn " << turn;
      ASSERT_EQ(s.last_logits().size(), logits.size());
      EXPECT_EQ(std::memcmp(s.last_logits().data(), logits.data(), logits.size() * 4), 0)
          << "turn " << turn << ": the last logits differ";
      // The next turn: the conversation so far (the last token not run yet) and three more.
      history = prompt;
      history.insert(history.end(), got->begin(), got->end());
      prompt = history;
      for (int32_t extra : {5, 6, 7}) prompt.push_back(extra);
      // The oracle cache runs the last emitted token as part of the next prompt, like feed().
      history.pop_back();
    }
    EXPECT_TRUE(gpu->backend().status().ok()) << gpu->backend().status().error().message;
  }
}

// The persistent decode kernel (Backend::decoder_stack) against the same step one launch per op:
// the tokens and the last logits of each of two turns, bit for bit (the second turn attends to
// every cache row the first turn's steps wrote), for each plan it runs (fused, fused-fp16kv: 16-bit
// caches) and on models with q/k norms (Qwen3), biases (Qwen2) and GQA. A plan it does not run
// (fused-int8kv: scaled cache) runs the ops on both and must say so (no stack runs).
TEST(GpuEngine, PersistentDecodeEqualsPerOpDecode) {
  const std::string data = env_or("FUSECHECK_TEST_DATA_DIR", FUSECHECK_TEST_DATA);
  for (const char* name : {"qwen3-tiny-extreme", "qwen3-tiny", "qwen2-tiny"}) {
    SCOPED_TRACE(name);
    const std::string dir = data + "/hf/" + name + "/bf16";
    FC_LOAD_CUDA_OR_SKIP(ops, dir);  // persistent_decode off: the default
    LoadOptions o;
    o.device = "cuda", o.cuda_module = testing::cuda_module_path(), o.persistent_decode = true;
    auto one = Model::load(dir, o);
    ASSERT_TRUE(one.ok()) << one.error().message;
    auto reg = NumericsRegistry::load("");
    ASSERT_TRUE(reg.ok());
    for (const char* plan_name : {"fused", "fused-fp16kv", "fused-int8kv"}) {
      SCOPED_TRACE(plan_name);
      auto prof = reg->find(plan_name);
      ASSERT_TRUE(prof.ok());
      const KernelPlan plan = KernelPlan::from_profile(*prof, one->config().num_layers);
      const int64_t runs0 = one->backend().decoder_stack_runs();
      std::vector<int32_t> prompt = {1, 17, 42, 99, 7, 3, 250, 64, 11};
      Session a(*one, Precision::kModel, 0, &plan), b(*ops, Precision::kModel, 0, &plan);
      for (int turn = 0; turn < 2; ++turn) {
        ASSERT_TRUE(a.feed(prompt).ok());
        ASSERT_TRUE(b.feed(prompt).ok());
        Sampler sa(SamplingParams{}), sb(SamplingParams{});
        auto ta = a.generate(48, sa, {}, nullptr), tb = b.generate(48, sb, {}, nullptr);
        ASSERT_TRUE(ta.ok() && tb.ok());
        EXPECT_EQ(*ta, *tb) << "turn " << turn;
        ASSERT_EQ(a.last_logits().size(), b.last_logits().size());
        EXPECT_EQ(
            std::memcmp(a.last_logits().data(), b.last_logits().data(), a.last_logits().size() * 4),
            0)
            << "turn " << turn << ": the last logits differ";
        prompt = {5, 6, 7};
      }
      const bool stack = std::string(plan_name) != "fused-int8kv";
      EXPECT_EQ(one->backend().decoder_stack_runs() > runs0, stack);
      EXPECT_EQ(ops->backend().decoder_stack_runs(), 0);
      EXPECT_TRUE(one->backend().status().ok()) << one->backend().status().error().message;
    }
  }
}

// sqrt(sum |a - b|^2 / sum |b|^2) over all of a's rows, and the worst row's.
struct RelErr {
  double all = 0, worst_row = 0;
};
RelErr rel_err(const std::vector<float>& a, const std::vector<float>& b, size_t row) {
  EXPECT_EQ(a.size(), b.size());
  RelErr r;
  double num = 0, den = 0;
  for (size_t off = 0; off + row <= std::min(a.size(), b.size()); off += row) {
    double n = 0, d = 0;
    for (size_t j = off; j < off + row; ++j)
      n += (double(a[j]) - b[j]) * (double(a[j]) - b[j]), d += double(b[j]) * b[j];
    num += n, den += d;
    r.worst_row = std::max(r.worst_row, std::sqrt(n / d));
  }
  r.all = std::sqrt(num / den);
  return r;
}

// Against transformers on CUDA (scripts/reference/hf_reference_cuda.py, reference_cuda.*): the fp32
// engine on the GPU within 1e-4 relative per position of transformers' fp32 (TF32 off), and the
// bf16 standard path on the GPU closer to transformers' CUDA bf16 than transformers' own CUDA fp32
// is to it.
TEST(GpuEngine, LogitsAgreeWithTransformersOnCuda) {
  const std::string data = env_or("FUSECHECK_TEST_DATA_DIR", FUSECHECK_TEST_DATA);
  for (const char* name : {"qwen3-tiny", "llama-tiny", "qwen2-tiny", "qwen3-tiny-extreme"}) {
    const std::string dir = data + "/hf/" + name;
    FC_LOAD_CUDA_OR_SKIP(g32, dir + "/fp32");
    auto gbf = load_cuda(dir + "/bf16");
    ASSERT_TRUE(gbf.ok()) << gbf.error().message;
    auto ref = SafetensorsFile::open(dir + "/reference_cuda.safetensors");
    ASSERT_TRUE(ref.ok()) << ref.error().message;  // committed: missing fails, never skips
    const auto meta = nlohmann::json::parse(testing::read_text(dir + "/reference_cuda.json"));
    const auto tensor = [&](const std::string& n) {
      const TensorInfo* t = ref->find(n);
      EXPECT_NE(t, nullptr) << n;
      auto v = t ? ref->read_f32(*t) : Result<std::vector<float>>(make_error("absent"));
      return v.ok() ? *v : std::vector<float>{};
    };
    const size_t vocab = static_cast<size_t>(g32->config().vocab_size);
    std::vector<float> ours32, oursbf, want32, wantbf;
    for (size_t i = 0; i < meta["sequences"].size(); ++i) {
      const auto ids = meta["sequences"][i].get<std::vector<int32_t>>();
      for (auto [m, p, out] : {std::tuple{&*g32, Precision::kFp32, &ours32},
                               std::tuple{&*gbf, Precision::kModel, &oursbf}}) {
        KvCache cache = m->new_cache(p, 0);
        std::vector<float> logits;
        ASSERT_TRUE(m->forward(ids, p, cache, LogitsFor::kAll, logits).ok());
        out->insert(out->end(), logits.begin(), logits.end());
      }
      const auto w32 = tensor(fmt::format("logits_fp32.{}", i));
      const auto wbf = tensor(fmt::format("logits_bf16.{}", i));
      want32.insert(want32.end(), w32.begin(), w32.end());
      wantbf.insert(wantbf.end(), wbf.begin(), wbf.end());
    }
    const RelErr e32 = rel_err(ours32, want32, vocab);
    const RelErr ebf = rel_err(oursbf, wantbf, vocab), gap = rel_err(want32, wantbf, vocab);
    std::printf(
        "[ %s ] GPU fp32 vs transformers CUDA fp32: %.3g (worst position %.3g); GPU bf16 "
        "standard vs transformers CUDA bf16: %.3g; transformers' own fp32-vs-bf16: %.3g\n",
        name, e32.all, e32.worst_row, ebf.all, gap.all);
    EXPECT_LT(e32.worst_row, 1e-4) << name;
    EXPECT_LT(ebf.all, gap.all) << name;
  }
}

TEST(GpuEngine, UnknownDeviceIsRefused) {
  LoadOptions o;
  o.device = "tpu";
  auto m = Model::load(
      env_or("FUSECHECK_TEST_DATA_DIR", FUSECHECK_TEST_DATA) + "/hf/qwen3-tiny-extreme/fp32", o);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("--device"), std::string::npos) << m.error().message;
}

// ---- sampling on the device (Backend::sample_advance) against the CPU Sampler ----

// Random logits over n ids: normal(0, scale), some snapped to a 1/4 grid (ties, which the CPU
// orders by ascending id), a few -inf and NaN (left out).
std::vector<float> sample_logits(std::mt19937_64& rng, int64_t n, float scale, bool ties) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = d(rng);
  if (ties)
    for (size_t i = 0; i < x.size(); i += 3) x[i] = std::round(x[i] * 4.0f) / 4.0f;
  for (size_t i = 5; i < x.size(); i += 97) x[i] = -INFINITY;
  for (size_t i = 11; i < x.size(); i += 211) x[i] = std::nanf("");
  return x;
}

// The device's token for (logits, params, u): one sample_advance from set_draw(u).
struct DeviceSampler {
  Backend& b;
  Buffer logits, tok, pos;
  DeviceSampler(Backend& be, int64_t n)
      : b(be), logits(be.alloc(size_t(n) * 4)), tok(be.alloc(4)), pos(be.alloc(4)) {}
  int32_t pick(const std::vector<float>& x, const SamplingParams& s, double u) {
    b.upload(logits, 0, x.data(), x.size() * 4);
    b.set_draw(u);
    b.sample_advance(tok.i32(), logits.f32(), int64_t(x.size()),
                     {s.temperature, s.top_k, s.top_p, s.min_p}, pos.i32());
    int32_t t = -1;
    b.download(&t, tok, 0, 4);
    return t;
  }
};

// The CPU picks `want` for u, and the device `got`: allowed only when u or top_p sits within
// a summation-order rounding of a boundary, i.e. the CPU itself picks `got` a hair away.
bool boundary_case(const std::vector<float>& x, SamplingParams s, double u, int32_t got) {
  for (double du : {-1e-12, 1e-12})
    if (Sampler(s).pick(x, std::clamp(u + du, 0.0, 1.0 - 1e-16)) == got) return true;
  for (float dp : {-1e-6f, 1e-6f}) {
    SamplingParams t = s;
    t.top_p = std::min(1.0f, s.top_p + dp);
    if (t.top_p < 1.0f && Sampler(t).pick(x, u) == got) return true;
  }
  return false;
}

TEST(GpuEngine, DeviceSamplerPicksTheCpuSamplersToken) {
  const std::string data = env_or("FUSECHECK_TEST_DATA_DIR", FUSECHECK_TEST_DATA);
  FC_LOAD_CUDA_OR_SKIP(gpu, data + "/hf/qwen3-tiny-extreme/fp32");
  Backend& b = gpu->backend();
  ASSERT_TRUE(b.supports_device_sampling());
  std::mt19937_64 rng(20261201);
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  const std::vector<SamplingParams> modes = {
      {1.0f, 0, 1.0f, 0.0f, 0},       {0.7f, 0, 1.0f, 0.0f, 0},   {1.3f, 50, 1.0f, 0.0f, 0},
      {1.0f, 0, 0.9f, 0.0f, 0},       {0.8f, 40, 0.95f, 0.0f, 0}, {1.0f, 0, 1.0f, 0.05f, 0},
      {0.6f, 20, 0.8f, 0.1f, 0},      {1.0f, 1, 1.0f, 0.0f, 0},   {2.0f, 0, 0.5f, 0.0f, 0},
      {1.0f, 1000000, 0.99f, 0.0f, 0}};
  int compared = 0, exact = 0, boundary = 0, pos_want = 0;
  for (int64_t n : {int64_t(7), int64_t(1000), int64_t(4099), int64_t(151936)}) {
    DeviceSampler dev(b, n);
    const int32_t zero = 0;
    b.upload(dev.pos, 0, &zero, 4);
    pos_want = 0;
    for (const SamplingParams& s : modes) {
      for (int rep = 0; rep < 3; ++rep) {
        const auto x = sample_logits(rng, n, rep == 2 ? 8.0f : 2.0f, rep != 1);
        for (int k = 0; k < 20; ++k) {
          const double u = k == 0 ? 0.0 : unif(rng);
          const int32_t want = Sampler(s).pick(x, u), got = dev.pick(x, s, u);
          ++compared, ++pos_want;
          if (got == want) {
            ++exact;
            continue;
          }
          ASSERT_TRUE(boundary_case(x, s, u, got))
              << "n " << n << " T " << s.temperature << " top_k " << s.top_k << " top_p " << s.top_p
              << " min_p " << s.min_p << " u " << u << ": cpu " << want << ", gpu " << got;
          ++boundary;
        }
      }
    }
    int32_t pos = -1;
    b.download(&pos, dev.pos, 0, 4);
    EXPECT_EQ(pos, pos_want) << "each pick moves the position on by one";
  }
  // All -inf (and all NaN): the CPU returns token 0.
  DeviceSampler dev(b, 64);
  EXPECT_EQ(dev.pick(std::vector<float>(64, -INFINITY), modes[0], 0.5), 0);
  EXPECT_EQ(dev.pick(std::vector<float>(64, std::nanf("")), modes[0], 0.5), 0);
  EXPECT_TRUE(b.status().ok()) << b.status().error().message;
  std::printf("device sampler: %d picks, %d equal to the CPU's, %d at a rounding boundary\n",
              compared, exact, boundary);
  EXPECT_GE(exact, compared - compared / 1000) << "boundary cases should be rare";
}

// Session::generate with sampling (graph-replayed, sampled on the device) against forward() +
// the CPU Sampler with the same seed on the same model. broad: the run must not be one token.
void sampled_equals_forward(const Model& m, bool broad) {
  const Model* gpu = &m;  // the name the steps below use
  const KernelPlan standard = gpu->standard_plan();
  const std::vector<SamplingParams> modes = {
      {1.0f, 0, 1.0f, 0.0f, 7}, {0.8f, 20, 0.9f, 0.0f, 8}, {1.2f, 0, 0.95f, 0.05f, 9}};
  for (const SamplingParams& sp : modes) {
    const std::vector<int32_t> prompt = {1, 17, 42, 99, 7, 3, 250, 64, 11};
    Session s(*gpu, Precision::kModel, 0, &standard);
    ASSERT_TRUE(s.feed(prompt).ok());
    Sampler dev_sampler(sp);
    auto got = s.generate(48, dev_sampler, {}, nullptr);
    ASSERT_TRUE(got.ok()) << got.error().message;
    KvCache cache = gpu->new_cache(Precision::kModel, 0, &standard);
    Activations ws;
    std::vector<float> logits;
    ASSERT_TRUE(gpu->forward(prompt, Precision::kModel, cache, LogitsFor::kLast, logits, nullptr,
                             &standard, &ws)
                    .ok());
    Sampler cpu_sampler(sp);
    std::vector<int32_t> want;
    for (int i = 0; i < 48; ++i) {
      want.push_back(cpu_sampler.next(logits));
      if (i + 1 == 48) break;
      ASSERT_TRUE(gpu->forward({&want.back(), 1}, Precision::kModel, cache, LogitsFor::kLast,
                               logits, nullptr, &standard, &ws)
                      .ok());
    }
    EXPECT_EQ(*got, want) << "temperature " << sp.temperature << " seed " << sp.seed;
    const std::set<int32_t> distinct(got->begin(), got->end());
    if (broad) {
      EXPECT_GT(distinct.size(), 3u) << "a sampled run should not be one repeated token";
    }
  }
}

TEST(GpuEngine, SampledGraphDecodeEqualsForwardAndCpuSampler) {
  const std::string data = env_or("FUSECHECK_TEST_DATA_DIR", FUSECHECK_TEST_DATA);
  const std::string stories =
      env_or("FUSECHECK_STORIES_DIR", testing::data_dir() + "/stories260K") + "/hf";
  // The extreme fixture's distribution is nearly one-hot; stories260K's is broad.
  for (const std::string& dir : {data + "/hf/qwen3-tiny-extreme/bf16", stories}) {
    FC_LOAD_CUDA_OR_SKIP(gpu, dir);
    sampled_equals_forward(*gpu, dir == stories);
  }
}

}  // namespace
}  // namespace fusecheck
