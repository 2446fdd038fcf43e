// fusecheck rebalance: the rescaled checkpoint computes the same function (fp32 logits of the
// original model are the oracle), lossy KV caches measured by the probe lose most of their error,
// the layout is preserved byte for byte where nothing changes, and what cannot be exact is refused.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "check/check.h"
#include "io/checkpoint.h"
#include "io/safetensors_writer.h"
#include "model/model.h"
#include "probe/probe.h"
#include "repair/rebalance.h"
#include "repair/rebalance_detail.h"
#include "testing.h"
#include "util/atomic_file.h"
#include "util/half.h"

namespace fusecheck {
namespace {

namespace fs = std::filesystem;
using testing::run_cli;
using testing::TempDir;

const std::string kExtreme = std::string(FUSECHECK_TEST_DATA) + "/hf/qwen3-tiny-extreme";

// fp32 reference logits for every position of a few sequences: [positions, vocab].
std::vector<float> fp32_logits(const std::string& dir) {
  auto m = Model::load(dir);
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  if (!m.ok()) return {};
  std::vector<float> all;
  for (int s = 0; s < 3; ++s) {
    std::vector<int32_t> tok;
    for (int i = 0; i < 24; ++i) tok.push_back(int32_t((37 * i + 101 * s + 5) % 500));
    KvCache cache = m->new_cache(Precision::kFp32, int64_t(tok.size()));
    std::vector<float> logits;
    auto st = m->forward(tok, Precision::kFp32, cache, LogitsFor::kAll, logits);
    EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

// max |a - b| / max |a| over all logits.
double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num = std::max(num, double(std::abs(a[i] - b[i])));
    den = std::max(den, double(std::abs(a[i])));
  }
  return den > 0 ? num / den : num;
}

Result<RebalanceSummary> rebalance(const std::string& in, const std::string& out,
                                   RebalanceOptions o = {}) {
  return rebalance_checkpoint(in, out, o);
}

void expect_same_function(const std::string& a, const std::string& b) {
  const double d = rel_diff(fp32_logits(a), fp32_logits(b));
  EXPECT_LT(d, 1e-5) << a << " vs " << b;
}

std::string fixture(const TempDir& t, const std::string& name, const std::string& flags) {
  auto r = run_cli("fixture " + (t / name) + " " + flags);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return t / name;
}

// Writes `in` (a single-file checkpoint) to `out` as f32 with `edit` applied to every tensor.
void rewrite(const std::string& in, const std::string& out,
             const std::function<void(const std::string&, std::vector<float>&)>& edit) {
  auto ck = Checkpoint::open(in);
  ASSERT_TRUE(ck.ok());
  const auto& f = ck->files().front();
  std::vector<std::vector<float>> data;
  std::vector<F32Tensor> ts;
  for (const auto& ti : f.tensors()) data.push_back(*f.read_f32(ti));
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const TensorInfo& ti = f.tensors()[i];
    edit(std::string(ti.name), data[i]);
    ts.push_back({std::string(ti.name), {ti.shape.begin(), ti.shape.end()}, data[i]});
  }
  fs::create_directories(out);
  ASSERT_TRUE(write_safetensors_f32(out + "/model.safetensors", ts).ok());
  fs::copy_file(in + "/config.json", out + "/config.json");
}

void with_k_norm(const std::string& in, const std::string& out, const std::vector<float>& gains) {
  rewrite(in, out, [&](const std::string& n, std::vector<float>& v) {
    if (n == "model.layers.1.self_attn.k_norm.weight") v = gains;
  });
}

TEST(Rebalance, Fp32LogitsUnchangedOnBf16AndFp32Checkpoints) {
  TempDir t;
  for (const char* dtype : {"bf16", "fp32"})
    for (const char* keys : {"flat", "geo"})
      for (bool calibrate : {true, false}) {
        SCOPED_TRACE(std::string(dtype) + " " + keys + (calibrate ? " calibrated" : " weights"));
        const std::string out = t / (std::string(dtype) + keys + (calibrate ? "c" : "w"));
        RebalanceOptions o;
        o.keys = *parse_key_balance(keys);
        o.calibrate = calibrate;
        auto r = rebalance(kExtreme + "/" + dtype, out, o);
        ASSERT_TRUE(r.ok()) << r.error().message;
        EXPECT_GE(r->plan.changed_tensors.size(), 8u);  // q_norm and k_norm of every layer
        EXPECT_TRUE(r->plan.via_norms);
        expect_same_function(kExtreme + "/" + dtype, out);
      }
}

TEST(Rebalance, FlattensTheKeyGainsAndMovesThemIntoTheQueries) {
  TempDir t;
  RebalanceOptions o;
  o.calibrate = false;
  o.values = ValueBalance::kNone;
  auto r = rebalance(kExtreme + "/bf16", t / "out", o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto before = Checkpoint::open(kExtreme + "/bf16"), after = Checkpoint::open(t / "out");
  ASSERT_TRUE(before.ok() && after.ok());
  auto gains = [](const Checkpoint& ck, const std::string& n) {
    const TensorRef* ref = ck.find(n);
    return *ref->file->read_f32(*ref->info);
  };
  const std::string k = "model.layers.1.self_attn.k_norm.weight";
  const std::string q = "model.layers.1.self_attn.q_norm.weight";
  auto k0 = gains(*before, k), k1 = gains(*after, k), q0 = gains(*before, q), q1 = gains(*after, q);
  auto max_abs = [](const std::vector<float>& v) {
    double m = 0;
    for (float x : v) m = std::max(m, double(std::abs(x)));
    return m;
  };
  EXPECT_GT(max_abs(k0), 90.0);  // the planted 96.5
  EXPECT_LT(max_abs(k1), 4.0);   // flat to within an octave of the median (~1)
  const size_t half = k0.size() / 2;
  for (size_t i = 0; i < k0.size(); ++i) {
    // Each channel moved by a power of two, the same on both channels of a RoPE pair, and the
    // per-channel product q * k (what the logit sees) is unchanged exactly.
    const double s = double(k1[i]) / k0[i];
    EXPECT_EQ(std::exp2(std::round(std::log2(s))), s) << i;
    EXPECT_EQ(double(k1[(i + half) % k0.size()]) / k0[(i + half) % k0.size()], s) << i;
    EXPECT_EQ(double(q1[i]) * k1[i], double(q0[i]) * k0[i]) << i;
  }
}

// The probe's measure of what a lossy profile adds: KL from fp32 beyond the standard path's own.
double int8_kv_excess_kl(const std::string& dir) {
  auto m = Model::load(dir);
  EXPECT_TRUE(m.ok());
  if (!m.ok()) return 0;
  auto reg = NumericsRegistry::load("");
  ProbeOptions opt;
  opt.profile = *reg->find("fused-int8kv");
  opt.inputs = *calibration_inputs(*m, 64, "");
  opt.greedy_tokens = 0;
  auto r = run_probe(*m, opt);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  if (!r.ok()) return 0;
  EXPECT_TRUE(r->lossy);
  return r->fused_vs_fp32.kl_mean - r->standard_vs_fp32.kl_mean;
}

TEST(Rebalance, CutsThePerTensorInt8KvErrorMeasuredByTheProbe) {
  TempDir t;
  const std::string fx = fixture(t, "fx", "--profile qwen3-0.6b-extreme --tiny");
  for (const std::string& in : {kExtreme + "/bf16", fx}) {
    SCOPED_TRACE(in);
    const std::string out = t / ("out" + std::to_string(in.size()));
    ASSERT_TRUE(rebalance(in, out).ok());
    const double before = int8_kv_excess_kl(in), after = int8_kv_excess_kl(out);
    RecordProperty("kl_before_" + std::to_string(in.size()), std::to_string(before));
    RecordProperty("kl_after_" + std::to_string(in.size()), std::to_string(after));
    EXPECT_GT(before, 0.05);  // broken to begin with
    EXPECT_LT(after * 4, before) << "before " << before << " after " << after;
  }
}

TEST(Rebalance, CheckRescoresTheNewCheckpointWithLessPredictedKvNoise) {
  TempDir t;
  ASSERT_TRUE(rebalance(kExtreme + "/bf16", t / "out").ok());
  CheckOptions co;
  co.kernels = "fused-int8kv";
  co.use_cache = false;

  auto a = check_model(kExtreme + "/bf16", co), b = check_model(t / "out", co);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->fingerprint, b->fingerprint);
  EXPECT_LT(b->analysis.amplification, 0.7 * a->analysis.amplification);
  // Per-channel int8 depends only on the per-pair products q*k, which the transform keeps.
  co.kernels = "fused-int8kv-channel";
  auto ac = check_model(kExtreme + "/bf16", co), bc = check_model(t / "out", co);
  EXPECT_NEAR(bc->analysis.amplification, ac->analysis.amplification,
              1e-6 * ac->analysis.amplification);
}

TEST(Rebalance, KeepsTheLayoutAndCopiesUnchangedBytes) {
  TempDir t;
  const std::string in = kExtreme + "/bf16", out = t / "out";
  auto r = rebalance(in, out);
  ASSERT_TRUE(r.ok()) << r.error().message;
  for (const char* f : {"config.json", "generation_config.json"})
    EXPECT_EQ(testing::read_text(in + "/" + f), testing::read_text(out + "/" + f)) << f;
  auto a = SafetensorsFile::open(in + "/model.safetensors");
  auto b = SafetensorsFile::open(out + "/model.safetensors");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->header_json(), b->header_json());
  EXPECT_EQ(a->file_size(), b->file_size());
  size_t changed = 0;
  for (const auto& ti : a->tensors()) {
    const bool listed =
        std::count(r->plan.changed_tensors.begin(), r->plan.changed_tensors.end(), ti.name) > 0;
    const bool same = *a->read_bytes(ti) == *b->read_bytes(*b->find(ti.name));
    EXPECT_EQ(same, !listed) << ti.name;
    changed += !same;
  }
  EXPECT_EQ(changed, r->plan.changed_tensors.size());
  auto rec = nlohmann::json::parse(testing::read_text(out + "/" + std::string(kRebalanceRecord)));
  EXPECT_EQ(rec["schema"], "fusecheck.rebalance/1");
  EXPECT_EQ(rec["layers"].size(), 4u);
  // No temporary files are left behind.
  for (const auto& e : fs::directory_iterator(out))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos);
}

TEST(Rebalance, ShardedCheckpointKeepsItsShards) {
  TempDir t;
  const std::string in =
      fixture(t, "in", "--profile qwen3-0.6b-extreme --tiny --shard-size 200000");
  auto src = Checkpoint::open(in);
  ASSERT_TRUE(src.ok());
  ASSERT_GT(src->files().size(), 2u);
  auto r = rebalance(in, t / "out");
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto dst = Checkpoint::open(t / "out");
  ASSERT_TRUE(dst.ok()) << dst.error().message;
  ASSERT_EQ(dst->files().size(), src->files().size());
  for (size_t i = 0; i < src->files().size(); ++i)
    EXPECT_EQ(fs::path(src->files()[i].path()).filename(),
              fs::path(dst->files()[i].path()).filename());
  EXPECT_EQ(testing::read_text(in + "/model.safetensors.index.json"),
            testing::read_text(t / "out/model.safetensors.index.json"));
  EXPECT_GT(r->files_rewritten, 1);  // the changed tensors live in several shards
  expect_same_function(in, t / "out");
}

TEST(Rebalance, TiedAndUntiedEmbeddingsAndGqa) {
  TempDir t;
  // qwen3-0.6b: tied embeddings, 4 query heads on 2 kv heads; qwen3-8b: untied lm_head.
  for (const char* profile : {"qwen3-0.6b-extreme", "qwen3-8b"}) {
    SCOPED_TRACE(profile);
    const std::string in =
        fixture(t, profile, std::string("--profile ") + profile + " --tiny --dtype f32");
    const std::string out = t / (std::string(profile) + "-out");
    ASSERT_TRUE(rebalance(in, out).ok());
    auto a = Checkpoint::open(in), b = Checkpoint::open(out);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->find("lm_head.weight") != nullptr, b->find("lm_head.weight") != nullptr);
    for (const char* n : {"lm_head.weight", "model.embed_tokens.weight"})
      if (const TensorRef* ra = a->find(n)) {
        EXPECT_EQ(*ra->file->read_bytes(*ra->info),
                  *b->find(n)->file->read_bytes(*b->find(n)->info));
      }
    expect_same_function(in, out);
  }
}

TEST(Rebalance, ModelsWithoutQkNormsFoldTheScaleIntoTheProjections) {
  TempDir t;
  // Llama and Qwen2 (q/k/v biases, a transformers-made checkpoint) with an outlier key RoPE pair
  // in layer 0, as trained models have without q/k norms: channels 3 and 11 of kv head 1 = rows
  // 19 and 27 of k_proj (head_dim 16, hidden 64), bias included.
  auto plant = [](const std::string& n, std::vector<float>& v) {
    const bool w = n == "model.layers.0.self_attn.k_proj.weight";
    if (!w && n != "model.layers.0.self_attn.k_proj.bias") return;
    for (size_t r : {19, 27})
      for (size_t c = 0; c < (w ? 64u : 1u); ++c) v[r * (w ? 64 : 1) + c] *= 40;
  };
  rewrite(fixture(t, "llama", "--profile llama-3.2-1b --tiny --dtype f32"), t / "llama-outlier",
          plant);
  rewrite(testing::data_dir() + "/hf/qwen2-tiny/bf16", t / "qwen2-outlier", plant);
  std::vector<std::string> models = {t / "llama-outlier", t / "qwen2-outlier"};
  for (const auto& in : models) {
    SCOPED_TRACE(in);
    for (bool calibrate : {true, false}) {
      const std::string out = t / ("out" + std::to_string(calibrate) +
                                   fs::path(in).filename().string() + std::to_string(in.size()));
      RebalanceOptions o;
      o.calibrate = calibrate;
      auto r = rebalance(in, out, o);
      ASSERT_TRUE(r.ok()) << r.error().message;
      EXPECT_FALSE(r->plan.via_norms);
      bool k_proj = false;
      for (const auto& n : r->plan.changed_tensors) k_proj |= n.ends_with("k_proj.weight");
      EXPECT_TRUE(k_proj);
      expect_same_function(in, out);
    }
  }
}

TEST(Rebalance, NegativeAndMixedSignGainsStayExactAndZeroPairsAreRefused) {
  TempDir t;
  const std::string base = fixture(t, "base", "--profile qwen3-0.6b-extreme --tiny --dtype f32");
  std::vector<float> g(32);
  for (size_t i = 0; i < g.size(); ++i) g[i] = (i % 3 == 0 ? -1.0f : 1.0f) * (0.5f + 0.1f * i);
  g[3] = -80.0f, g[19] = 60.0f;  // an outlier pair of mixed signs
  with_k_norm(base, t / "signed", g);
  for (const char* keys : {"flat", "geo"}) {
    RebalanceOptions o;
    o.keys = *parse_key_balance(keys);
    ASSERT_TRUE(rebalance(t / "signed", t / (std::string("signed-") + keys), o).ok());
    expect_same_function(t / "signed", t / (std::string("signed-") + keys));
    auto ck = Checkpoint::open(t / (std::string("signed-") + keys));
    const TensorRef* ref = ck->find("model.layers.1.self_attn.k_norm.weight");
    auto after = *ref->file->read_f32(*ref->info);
    for (size_t i = 0; i < g.size(); ++i) EXPECT_EQ(std::signbit(after[i]), std::signbit(g[i]));
  }
  g[5] = 0, g[21] = 0;  // both channels of pair 5
  with_k_norm(base, t / "zero", g);
  auto r = run_cli("rebalance " + (t / "zero") + " " + (t / "zero-out"));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("RoPE pair 5"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(fs::exists(t / "zero-out/model.safetensors"));
  // A single zero in a pair is a pair that still carries its partner: it is scaled exactly.
  g[5] = 1.0f;
  with_k_norm(base, t / "one-zero", g);
  ASSERT_TRUE(rebalance(t / "one-zero", t / "one-zero-out").ok());
  expect_same_function(t / "one-zero", t / "one-zero-out");
}

TEST(Rebalance, InexactScalingIsRefusedElementByElement) {
  TempDir t;
  // A hand-made F16 file: 60000 * 2 overflows F16; 2^-24 / 2 is below its smallest subnormal.
  const uint16_t vals[3] = {f32_to_f16(1.5f), f32_to_f16(60000.0f), f32_to_f16(5.9604645e-8f)};
  std::string header = R"({"w":{"dtype":"F16","shape":[3],"data_offsets":[0,6]}})";
  std::string bytes(8, '\0');
  uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  bytes += header + std::string(reinterpret_cast<const char*>(vals), 6);
  testing::write_text(t / "w.safetensors", bytes);
  auto f = SafetensorsFile::open(t / "w.safetensors");
  ASSERT_TRUE(f.ok()) << f.error().message;
  const TensorInfo& ti = *f->find("w");
  auto ok = repair::apply_edit(*f, ti, {"w", {}, {3, 0, 0}});
  ASSERT_TRUE(ok.ok());
  uint16_t first;
  std::memcpy(&first, ok->data(), 2);
  EXPECT_EQ(f16_to_f32(first), 12.0f);
  auto over = repair::apply_edit(*f, ti, {"w", {}, {0, 1, 0}});
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.error().message.find("not exactly representable in F16"), std::string::npos);
  EXPECT_FALSE(repair::apply_edit(*f, ti, {"w", {}, {0, 0, -1}}).ok());
}

TEST(Rebalance, F16CheckpointStaysExactWhereAScaleWouldLeaveTheNormalRange) {
  // fp16's normal range ends at 6.1e-5, where small weights of this fixture sit: the scales that
  // would halve such a weight inexactly are moved toward 1 instead of refusing the model.
  TempDir t;
  const std::string in = fixture(t, "f16", "--profile qwen3-0.6b-extreme --tiny --dtype f16");
  auto r = rebalance(in, t / "out");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->plan.dtype, "F16");
  int clamped = 0;
  for (const auto& l : r->plan.layers) clamped += l.clamped;
  EXPECT_GT(clamped, 0);
  expect_same_function(in, t / "out");
}

TEST(Rebalance, RefusesTensorsOfOtherDtypes) {
  // The same bytes, with layer 1's k_norm declared I32 (also 4 bytes a value): a valid file that
  // holds integer gains, which no power-of-two scale can be applied to as a float.
  TempDir t;
  const std::string in = kExtreme + "/fp32";
  std::string bytes = testing::read_text(in + "/model.safetensors");
  const size_t at = bytes.find("model.layers.1.self_attn.k_norm.weight");
  ASSERT_NE(at, std::string::npos);
  const size_t f32 = bytes.find("\"F32\"", at);
  ASSERT_NE(f32, std::string::npos);
  bytes.replace(f32, 5, "\"I32\"");
  fs::create_directories(t / "i32");
  testing::write_text(t / "i32/model.safetensors", bytes);
  fs::copy_file(in + "/config.json", t / "i32/config.json");
  for (const char* scales : {"weights", "calibrate"}) {
    auto r = run_cli("rebalance " + (t / "i32") + " " + (t / "out") + " --scales " + scales);
    EXPECT_EQ(r.exit_code, 3) << scales;
    EXPECT_NE(r.err.find("I32"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

TEST(Rebalance, RefusesBadOutputDirectories) {
  TempDir t;
  const std::string in = kExtreme + "/bf16";
  auto same = run_cli("rebalance " + in + " " + in + "/");
  EXPECT_EQ(same.exit_code, 3);
  EXPECT_NE(same.err.find("is the model directory"), std::string::npos) << same.err;
  fs::create_directory_symlink(in, t / "link");
  EXPECT_EQ(run_cli("rebalance " + in + " " + (t / "link")).exit_code, 3);

  fs::create_directories(t / "full");
  testing::write_text(t / "full/old.txt", "x");
  auto full = run_cli("rebalance " + in + " " + (t / "full"));
  EXPECT_EQ(full.exit_code, 3);
  EXPECT_NE(full.err.find("--force"), std::string::npos) << full.err;
  // --force writes, and removes a stale checkpoint file that would change what OUT is.
  testing::write_text(t / "full/model.safetensors.index.json", "{}");
  auto forced = run_cli("rebalance " + in + " " + (t / "full") + " --force");
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_FALSE(fs::exists(t / "full/model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(t / "full/old.txt"));
  expect_same_function(in, t / "full");

  // Unwritable: the output's parent is a file (root ignores permission bits, this it cannot).
  testing::write_text(t / "afile", "x");
  auto bad = run_cli("rebalance " + in + " " + (t / "afile/out"));
  EXPECT_EQ(bad.exit_code, 3);
  EXPECT_NE(bad.err.find("afile/out"), std::string::npos) << bad.err;
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
}

TEST(Rebalance, RefusesWhatItCannotVerifyAndBadFlags) {
  TempDir t;
  const std::string moe = fixture(t, "moe", "--profile qwen3-235b-a22b --tiny");
  auto r = run_cli("rebalance " + moe + " " + (t / "out"));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("mixture-of-experts"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(t / "out/model.safetensors"));
  const std::string in = kExtreme + "/bf16";
  EXPECT_EQ(run_cli("rebalance " + in + " " + (t / "o2") + " --keys sideways").exit_code, 64);
  EXPECT_EQ(run_cli("rebalance " + in + " " + (t / "o3") + " --values geo").exit_code, 64);
  EXPECT_EQ(run_cli("rebalance " + in + " " + (t / "o4") + " --keys none --values none").exit_code,
            64);
  EXPECT_EQ(run_cli("rebalance " + in + " " + (t / "o5") + " --scales guess").exit_code, 64);
  // A config asking for partial RoPE pairs channels differently: refused.
  fs::create_directories(t / "partial");
  fs::copy_file(in + "/model.safetensors", t / "partial/model.safetensors");
  auto cfg = nlohmann::json::parse(testing::read_text(in + "/config.json"));
  cfg["partial_rotary_factor"] = 0.5;
  testing::write_text(t / "partial/config.json", cfg.dump());
  auto p = run_cli("rebalance " + (t / "partial") + " " + (t / "o6"));
  EXPECT_EQ(p.exit_code, 3);
  EXPECT_NE(p.err.find("partial_rotary_factor"), std::string::npos) << p.err;
}

TEST(Rebalance, CommandReportsTheChangeAndTheRescore) {
  TempDir t;
  auto r = run_cli("rebalance " + kExtreme + "/bf16 " + (t / "out"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("scales from calibration, keys flat (in q_norm/k_norm)"), std::string::npos)
      << r.out;
  // The re-score is reported (its verdicts follow data/kernels.json's fitted rules, which the
  // held-out validation pins; here both are printed, not predicted).
  EXPECT_NE(r.out.find("static check (fused-int8kv): before "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(", after "), std::string::npos) << r.out;
  auto check = run_cli("check " + (t / "out") + " --no-cache --format json");
  EXPECT_NE(check.exit_code, 3) << check.err;
}

}  // namespace
}  // namespace fusecheck
