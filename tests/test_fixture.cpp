// Tests for the synthetic checkpoint writer (src/fixture): written files are read back with the
// project's own safetensors/checkpoint readers, which are strict about layout.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "fixture/fixture.h"
#include "io/checkpoint.h"
#include "testing.h"
#include "util/half.h"

namespace fusecheck {
namespace {

using nlohmann::json;
using testing::read_text;
using testing::TempDir;
using testing::write_text;
namespace fs = std::filesystem;

FixtureOptions opts_for(const std::string& profile, bool tiny = true) {
  FixtureOptions o;
  o.profile = profile;
  o.tiny = tiny;
  return o;
}

json read_json(const std::string& path) {
  return json::parse(read_text(path));
}

Checkpoint open_ok(const std::string& dir) {
  auto ck = Checkpoint::open(dir);
  EXPECT_TRUE(ck.ok()) << (ck.ok() ? "" : ck.error().message);
  if (!ck.ok()) throw std::runtime_error("Checkpoint::open failed");
  return std::move(ck).value();
}

std::vector<float> values(const Checkpoint& ck, const std::string& name) {
  const TensorRef* r = ck.find(name);
  EXPECT_NE(r, nullptr) << name;
  if (!r) return {};
  auto v = r->file->read_f32(*r->info);
  EXPECT_TRUE(v.ok()) << (v.ok() ? "" : v.error().message);
  return v.ok() ? *v : std::vector<float>{};
}

float max_of(const std::vector<float>& v) {
  return *std::max_element(v.begin(), v.end());
}

std::vector<uint64_t> shape_of(const Checkpoint& ck, const std::string& name) {
  const TensorRef* r = ck.find(name);
  return r ? std::vector<uint64_t>(r->info->shape.begin(), r->info->shape.end())
           : std::vector<uint64_t>{};
}

uint64_t disk_bytes(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    struct stat st;
    if (::stat(e.path().c_str(), &st) == 0) n += uint64_t(st.st_blocks) * 512;
  }
  return n;
}

uint64_t logical_bytes(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors") n += fs::file_size(e.path());
  return n;
}

TEST(Fixture, ProfileNamesInFileOrder) {
  std::vector<std::string> want = {"qwen3-0.6b", "qwen3-0.6b-extreme", "llama-3.2-1b", "qwen3-8b",
                                   "qwen3-235b-a22b"};
  EXPECT_EQ(fixture_profile_names(), want);
}

TEST(Fixture, TinyQwen3IsAValidCheckpoint) {
  TempDir t;
  const std::string dir = t / "m";
  auto r = write_fixture(dir, opts_for("qwen3-0.6b"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->shard_count, 1u);
  Checkpoint ck = open_ok(dir);
  EXPECT_EQ(ck.tensor_count(), r->tensor_count);

  json cfg = read_json(dir + "/config.json");
  EXPECT_EQ(cfg["torch_dtype"], "bfloat16");
  EXPECT_EQ(cfg["transformers_version"], "fusecheck-fixture");
  EXPECT_EQ(cfg["model_type"], "qwen3");
  const uint64_t hidden = cfg["hidden_size"], heads = cfg["num_attention_heads"],
                 kv = cfg["num_key_value_heads"], hd = cfg["head_dim"],
                 inter = cfg["intermediate_size"], vocab = cfg["vocab_size"],
                 layers = cfg["num_hidden_layers"];
  EXPECT_EQ(hidden, 64u);  // the tiny override
  EXPECT_EQ(layers, 28u);  // layer count kept
  json gen = read_json(dir + "/generation_config.json");
  EXPECT_EQ(gen["bos_token_id"], cfg["bos_token_id"]);
  EXPECT_EQ(gen["eos_token_id"], cfg["eos_token_id"]);
  EXPECT_EQ(gen["do_sample"], false);

  using S = std::vector<uint64_t>;
  EXPECT_EQ(shape_of(ck, "model.embed_tokens.weight"), (S{vocab, hidden}));
  EXPECT_EQ(shape_of(ck, "model.norm.weight"), (S{hidden}));
  EXPECT_EQ(ck.find("lm_head.weight"), nullptr);  // tied embeddings
  for (uint64_t l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    EXPECT_EQ(shape_of(ck, p + "input_layernorm.weight"), (S{hidden}));
    EXPECT_EQ(shape_of(ck, p + "post_attention_layernorm.weight"), (S{hidden}));
    EXPECT_EQ(shape_of(ck, p + "self_attn.q_proj.weight"), (S{heads * hd, hidden}));
    EXPECT_EQ(shape_of(ck, p + "self_attn.k_proj.weight"), (S{kv * hd, hidden}));
    EXPECT_EQ(shape_of(ck, p + "self_attn.v_proj.weight"), (S{kv * hd, hidden}));
    EXPECT_EQ(shape_of(ck, p + "self_attn.o_proj.weight"), (S{hidden, heads * hd}));
    EXPECT_EQ(shape_of(ck, p + "self_attn.q_norm.weight"), (S{hd}));
    EXPECT_EQ(shape_of(ck, p + "self_attn.k_norm.weight"), (S{hd}));
    EXPECT_EQ(shape_of(ck, p + "mlp.gate_proj.weight"), (S{inter, hidden}));
    EXPECT_EQ(shape_of(ck, p + "mlp.up_proj.weight"), (S{inter, hidden}));
    EXPECT_EQ(shape_of(ck, p + "mlp.down_proj.weight"), (S{hidden, inter}));
  }
  EXPECT_EQ(ck.tensor_count(), 2 + 11 * layers);

  for (const auto& f : ck.files()) {
    uint64_t data = 0;
    for (const auto& ti : f.tensors()) {
      EXPECT_EQ(ti.dtype, DType::BF16);
      data += ti.nbytes;
      auto v = f.read_f32(ti);
      ASSERT_TRUE(v.ok());
      if (ti.shape.size() == 1) {
        for (float x : *v) ASSERT_GT(x, 0.0f) << ti.name;  // gains are positive
      } else {
        // Uniform in [-a, a], a = sqrt(3 / fan_in) (std 1 for the embedding), non-degenerate.
        double a = ti.name.find("embed") != std::string::npos ? std::sqrt(3.0)
                                                              : std::sqrt(3.0 / ti.shape[1]);
        double sq = 0;
        for (float x : *v) {
          ASSERT_LE(std::fabs(x), a * 1.01) << ti.name;
          sq += double(x) * x;
        }
        EXPECT_NEAR(std::sqrt(sq / v->size()), a / std::sqrt(3.0), 0.1 * a) << ti.name;
      }
    }
    EXPECT_EQ(f.header_json().size() % 8, 0u);
    EXPECT_EQ(f.file_size(), 8 + f.header_json().size() + data);
    EXPECT_EQ(f.file_size(), fs::file_size(f.path()));
    EXPECT_EQ(f.metadata().at("format"), "pt");
  }
  EXPECT_EQ(r->total_bytes, logical_bytes(dir));
}

TEST(Fixture, ExtremeProfilePlantsPublishedKNormMaxima) {
  TempDir t;
  ASSERT_TRUE(write_fixture(t.path(), opts_for("qwen3-0.6b-extreme")).ok());
  Checkpoint ck = open_ok(t.path());
  int above20 = 0;
  for (int l = 0; l < 28; ++l) {
    auto v = values(ck, "model.layers." + std::to_string(l) + ".self_attn.k_norm.weight");
    ASSERT_EQ(v.size(), 32u);
    if (max_of(v) > 20) ++above20;
    if (l == 0) {
      EXPECT_EQ(max_of(v), 96.5f);
      // The maximum sits in the upper half; its RoPE partner (i - head_dim/2) is raised with it.
      size_t c0 = size_t(std::max_element(v.begin(), v.end()) - v.begin());
      EXPECT_GE(c0, 16u);
      EXPECT_EQ(v[c0 - 16], bf16_to_f32(f32_to_bf16(0.6f * 96.5f)));
      EXPECT_EQ(std::count(v.begin(), v.end(), 96.5f), 1);
    }
    if (l == 1) {
      EXPECT_EQ(max_of(v), 44.5f);
    }
  }
  EXPECT_EQ(above20, 16);
  // q_norm has no table in this profile: ordinary log-normal gains.
  EXPECT_LT(max_of(values(ck, "model.layers.0.self_attn.q_norm.weight")), 5.0f);
}

TEST(Fixture, NormMaxOverrides) {
  TempDir t;
  FixtureOptions o = opts_for("qwen3-0.6b-extreme");
  o.k_norm_max = {{0, 12.0}, {27, 64.0}};
  o.q_norm_max = {{5, 30.0}};
  ASSERT_TRUE(write_fixture(t.path(), o).ok());
  Checkpoint ck = open_ok(t.path());
  EXPECT_EQ(max_of(values(ck, "model.layers.0.self_attn.k_norm.weight")), 12.0f);   // replaced
  EXPECT_EQ(max_of(values(ck, "model.layers.1.self_attn.k_norm.weight")), 44.5f);   // profile's
  EXPECT_EQ(max_of(values(ck, "model.layers.27.self_attn.k_norm.weight")), 64.0f);  // added
  EXPECT_EQ(max_of(values(ck, "model.layers.5.self_attn.q_norm.weight")), 30.0f);

  for (int64_t bad : {28, -1}) {
    TempDir t2;
    FixtureOptions b = opts_for("qwen3-0.6b");
    b.k_norm_max = {{bad, 10.0}};
    auto r = write_fixture(t2.path(), b);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("out of range"), std::string::npos) << r.error().message;
  }
  // Llama has no k_norm to plant into.
  FixtureOptions l = opts_for("llama-3.2-1b");
  l.k_norm_max = {{0, 10.0}};
  EXPECT_FALSE(write_fixture(t / "llama", l).ok());
}

TEST(Fixture, ShardedOutputHasACompleteIndex) {
  TempDir t;
  FixtureOptions o = opts_for("qwen3-235b-a22b");
  o.shard_bytes = 200'000;
  auto r = write_fixture(t.path(), o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_GT(r->shard_count, 3u);
  EXPECT_FALSE(fs::exists(t / "model.safetensors"));
  Checkpoint ck = open_ok(t.path());
  EXPECT_EQ(ck.files().size(), r->shard_count);
  EXPECT_EQ(ck.tensor_count(), r->tensor_count);

  json idx = read_json(t / "model.safetensors.index.json");
  ASSERT_EQ(idx["weight_map"].size(), r->tensor_count);
  uint64_t total = 0;
  for (const auto& f : ck.files()) {
    EXPECT_LE(fs::file_size(f.path()) - 8 - f.header_json().size(), 200'000u);
    for (const auto& ti : f.tensors()) {
      EXPECT_EQ(idx["weight_map"][ti.name], fs::path(f.path()).filename().string());
      total += ti.nbytes;
    }
  }
  EXPECT_EQ(idx["metadata"]["total_size"], total);
  char want[64];
  snprintf(want, sizeof want, "model-00001-of-%05zu.safetensors", r->shard_count);
  EXPECT_TRUE(fs::exists(t / want));

  // MoE layout: router plus per-expert projections, untied lm_head.
  using S = std::vector<uint64_t>;
  EXPECT_EQ(shape_of(ck, "model.layers.0.mlp.gate.weight"), (S{8, 64}));
  EXPECT_EQ(shape_of(ck, "model.layers.93.mlp.experts.7.gate_proj.weight"), (S{32, 64}));
  EXPECT_EQ(shape_of(ck, "model.layers.93.mlp.experts.7.down_proj.weight"), (S{64, 32}));
  EXPECT_EQ(ck.find("model.layers.0.mlp.gate_proj.weight"), nullptr);
  EXPECT_EQ(shape_of(ck, "lm_head.weight"), (S{512, 64}));
}

TEST(Fixture, Sparse235BIsFastAndSmallOnDisk) {
  TempDir t;
  FixtureOptions o = opts_for("qwen3-235b-a22b", /*tiny=*/false);
  o.sparse = true;
  auto start = std::chrono::steady_clock::now();
  auto r = write_fixture(t.path(), o);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(r.ok()) << r.error().message;
  RecordProperty("seconds", std::to_string(secs));
  EXPECT_LT(secs, 30.0);
  EXPECT_GT(r->total_bytes, 400e9);
  EXPECT_EQ(r->total_bytes, logical_bytes(t.path()));
  EXPECT_LT(disk_bytes(t.path()), 200u << 20);
  Checkpoint ck = open_ok(t.path());
  EXPECT_EQ(ck.tensor_count(), r->tensor_count);
  // Matrices are holes (zeros); norms are real.
  auto m = values(ck, "model.layers.50.mlp.experts.3.down_proj.weight");
  ASSERT_EQ(m.size(), 4096u * 1536);
  EXPECT_TRUE(std::all_of(m.begin(), m.end(), [](float x) { return x == 0.0f; }));
  auto k = values(ck, "model.layers.93.self_attn.k_norm.weight");
  ASSERT_EQ(k.size(), 128u);
  EXPECT_TRUE(std::all_of(k.begin(), k.end(), [](float x) { return x > 0.0f; }));
}

TEST(Fixture, Sparse8B) {
  TempDir t;
  FixtureOptions o = opts_for("qwen3-8b", /*tiny=*/false);
  o.sparse = true;
  auto r = write_fixture(t.path(), o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_GT(r->total_bytes, 15e9);
  EXPECT_LT(disk_bytes(t.path()), 50u << 20);
  Checkpoint ck = open_ok(t.path());
  EXPECT_NE(ck.find("lm_head.weight"), nullptr);  // untied
}

TEST(Fixture, SameSeedSameBytes) {
  TempDir t;
  FixtureOptions o = opts_for("qwen3-0.6b-extreme");
  o.seed = 7;
  o.shard_bytes = 1'000'000;
  ASSERT_TRUE(write_fixture(t / "a", o).ok());
  ASSERT_TRUE(write_fixture(t / "b", o).ok());
  o.seed = 8;
  ASSERT_TRUE(write_fixture(t / "c", o).ok());
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(t / "a")) {
    std::string n = e.path().filename().string();
    EXPECT_EQ(read_text(t / "a/" + n), read_text(t / "b/" + n)) << n;
    if (n.ends_with(".safetensors")) {
      EXPECT_NE(read_text(t / "a/" + n), read_text(t / "c/" + n)) << n;
    }
    ++files;
  }
  EXPECT_GT(files, 4u);
}

TEST(Fixture, ExistingDirectoryNeedsForceAndKeepsForeignFiles) {
  TempDir t;
  write_text(t / "README.md", "mine");
  auto r = write_fixture(t.path(), opts_for("qwen3-0.6b"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("pass --force"), std::string::npos) << r.error().message;
  EXPECT_FALSE(fs::exists(t / "config.json"));

  // Sharded, then single-file, then sharded again: each time the directory holds one checkpoint.
  FixtureOptions o = opts_for("qwen3-0.6b");
  o.force = true;
  o.shard_bytes = 500'000;
  ASSERT_TRUE(write_fixture(t.path(), o).ok());
  EXPECT_TRUE(fs::exists(t / "model.safetensors.index.json"));
  o.shard_bytes = 0;
  ASSERT_TRUE(write_fixture(t.path(), o).ok());
  for (const auto& e : fs::directory_iterator(t.path()))
    EXPECT_FALSE(e.path().filename().string().starts_with("model-")) << e.path();
  EXPECT_FALSE(fs::exists(t / "model.safetensors.index.json"));
  open_ok(t.path());
  o.shard_bytes = 1'000'000;
  ASSERT_TRUE(write_fixture(t.path(), o).ok());
  EXPECT_FALSE(fs::exists(t / "model.safetensors"));
  open_ok(t.path());
  EXPECT_EQ(read_text(t / "README.md"), "mine");
  for (const auto& e : fs::directory_iterator(t.path()))  // no temporary files left behind
    EXPECT_NE(e.path().filename().string()[0], '.') << e.path();
}

TEST(Fixture, F32AndF16) {
  for (auto [dt, name, torch] :
       {std::tuple{DType::F32, "F32", "float32"}, std::tuple{DType::F16, "F16", "float16"}}) {
    TempDir t;
    FixtureOptions o = opts_for("qwen3-0.6b-extreme");
    o.dtype = dt;
    ASSERT_TRUE(write_fixture(t.path(), o).ok());
    EXPECT_EQ(read_json(t / "config.json")["torch_dtype"], torch);
    Checkpoint ck = open_ok(t.path());
    for (const auto& f : ck.files()) {
      EXPECT_NE(f.header_json().find(std::string("\"dtype\":\"") + name + "\""), std::string::npos);
      for (const auto& ti : f.tensors()) EXPECT_EQ(ti.dtype, dt) << ti.name;
    }
    EXPECT_EQ(max_of(values(ck, "model.layers.0.self_attn.k_norm.weight")), 96.5f);
  }
}

TEST(Fixture, LlamaHasNoQKNorm) {
  TempDir t;
  auto r = write_fixture(t.path(), opts_for("llama-3.2-1b"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  Checkpoint ck = open_ok(t.path());
  EXPECT_EQ(ck.find("model.layers.0.self_attn.k_norm.weight"), nullptr);
  EXPECT_EQ(shape_of(ck, "model.layers.15.self_attn.k_proj.weight"),
            (std::vector<uint64_t>{2 * 16, 64}));
  EXPECT_EQ(ck.tensor_count(), 2 + 9 * 16u);
}

TEST(Fixture, ProfilesFileErrorsNameTheFile) {
  TempDir t;
  FixtureOptions o = opts_for("x", /*tiny=*/false);
  o.profiles_file = t / "p.json";
  auto expect_error = [&](const std::string& text, const std::string& what) {
    write_text(o.profiles_file, text);
    auto r = write_fixture(t / "out", o);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.error().message.find(o.profiles_file), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find(what), std::string::npos) << r.error().message;
    EXPECT_EQ(r.error().message.find('\n'), std::string::npos);
  };
  expect_error("{", "not valid JSON");
  expect_error(R"({"profiles": 3})", "profiles");
  expect_error(R"({"profiles": [{"name": "y"}]})", "unknown profile \"x\" (known: y)");
  expect_error(R"({"profiles": [{"name": "x", "base": "x"}]})", "loops");
  expect_error(R"({"profiles": [{"name": "x", "base": "z"}]})", "base \"z\" is not a profile");
  expect_error(R"({"profiles": [{"name": "x", "shard_bytes": -1}]})", "shard_bytes");
  expect_error(R"({"profiles": [{"name": "x", "config": {"hidden_size": "big"}}]})", "hidden_size");
  expect_error(R"({"profiles": [{"name": "x", "gains": {"v_norm": {}}}]})", "v_norm");
  EXPECT_FALSE(fs::exists(t / "out"));  // nothing is created for a bad profile
  o.profiles_file = t / "missing.json";
  EXPECT_FALSE(write_fixture(t / "out", o).ok());
}

TEST(Fixture, ProfilesFileWithBaseChain) {
  TempDir t;
  json base = {{"name", "b"},
               {"config",
                {{"hidden_size", 32},
                 {"num_attention_heads", 2},
                 {"num_hidden_layers", 3},
                 {"intermediate_size", 48},
                 {"vocab_size", 100},
                 {"tie_word_embeddings", false}}},
               {"gains", {{"k_norm", {{"median", 2.0}, {"sigma", 0.0}}}}}};
  json child = {
      {"name", "c"},
      {"base", "b"},
      {"config", {{"num_hidden_layers", 2}}},
      {"gains", {{"k_norm", {{"median", 1.0}, {"sigma", 0.1}, {"layer_max", {9.0, nullptr}}}}}}};
  write_text(t / "p.json", json{{"profiles", {base, child}}}.dump());
  FixtureOptions o = opts_for("c", /*tiny=*/false);
  o.profiles_file = t / "p.json";
  ASSERT_TRUE(write_fixture(t / "out", o).ok());
  Checkpoint ck = open_ok(t / "out");
  EXPECT_EQ(read_json(t / "out/config.json")["num_hidden_layers"], 2);
  EXPECT_EQ(shape_of(ck, "model.layers.1.self_attn.k_norm.weight"), (std::vector<uint64_t>{16}));
  EXPECT_EQ(max_of(values(ck, "model.layers.0.self_attn.k_norm.weight")), 9.0f);
  EXPECT_LT(max_of(values(ck, "model.layers.1.self_attn.k_norm.weight")), 2.0f);
  EXPECT_NE(ck.find("lm_head.weight"), nullptr);
  o.tiny = true;  // neither profile has tiny overrides
  EXPECT_FALSE(write_fixture(t / "out2", o).ok());
}

// The CLI front end (needs the fusecheck binary's main).
TEST(FixtureCli, WritesAndReportsErrors) {
  TempDir t;
  auto r = testing::run_cli("fixture " + t.path() + "/m --profile qwen3-0.6b --tiny --seed 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("wrote " + t.path() + "/m: qwen3-0.6b, 310 tensors, 1 file(s), ", 0), 0u)
      << r.out;
  r = testing::run_cli("fixture " + t.path() + "/m --profile qwen3-0.6b --tiny");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err.rfind("fusecheck: error: ", 0), 0u) << r.err;
  r = testing::run_cli("fixture " + t.path() +
                       "/s --profile qwen3-0.6b --tiny --shard-size 0.5MB "
                       "--k-norm-max 0=50,1=40 --k-norm-max 2=30 --dtype f32");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Checkpoint ck = open_ok(t / "s");
  EXPECT_GT(ck.files().size(), 1u);
  EXPECT_EQ(max_of(values(ck, "model.layers.2.self_attn.k_norm.weight")), 30.0f);
  for (const char* bad :
       {"--k-norm-max 3", "--k-norm-max x=3", "--shard-size 4XB", "--seed -1", "--dtype f8"}) {
    r = testing::run_cli("fixture " + t.path() + "/bad --profile qwen3-0.6b --tiny " + bad);
    EXPECT_EQ(r.exit_code, 64) << bad << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  r = testing::run_cli("fixture --list");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("qwen3-235b-a22b\n"), std::string::npos);
}

}  // namespace
}  // namespace fusecheck
