// Hostile checkpoints for the inference engine: the right tensor names with the wrong shapes or
// dtypes, missing tensors, configs that disagree with the weights or hold absurd sizes. Model::load
// and `fusecheck generate` must both give one clear error line (exit 3), never UB, a hang or a huge
// allocation. Each case starts from a valid tiny Qwen3 fixture and breaks exactly one thing.
#include <chrono>
#include <nlohmann/json.hpp>

#include "fixture/fixture.h"
#include "malformed_testing.h"
#include "model/model.h"

namespace fusecheck {
namespace {

using namespace malformed;  // NOLINT(google-build-using-namespace): the suite's shared helpers

// A valid tiny Qwen3 checkpoint (28 layers, hidden 64, vocab 512, tied embeddings) whose weights
// are loaded into a SafetensorsBuilder so one tensor can be replaced, removed or retyped.
struct EngineModel {
  EngineModel() {
    FixtureOptions o;
    o.profile = "qwen3-0.6b";
    o.tiny = true;
    auto s = write_fixture(dir, o);
    if (!s.ok()) throw std::runtime_error(s.error().message);
    config = json::parse(read_text(dir + "/config.json"));
    auto f = SafetensorsFile::open(st_path());
    if (!f.ok()) throw std::runtime_error(f.error().message);
    for (const TensorInfo& t : f->tensors()) {
      auto raw = f->read_bytes(t);
      if (!raw.ok()) throw std::runtime_error(raw.error().message);
      weights.add(t.name, std::string(dtype_name(t.dtype)), t.shape, *raw);
    }
  }
  void write() const {
    write_text(dir + "/config.json", config.dump(2));
    weights.write(st_path());
  }
  std::string st_path() const { return dir + "/model.safetensors"; }

  TempDir root;
  std::string dir = root / "model";
  json config;
  SafetensorsBuilder weights;
};

const std::string kQ = "model.layers.0.self_attn.q_proj.weight";
const std::string kDown = "model.layers.27.mlp.down_proj.weight";
const std::string kEmbed = "model.embed_tokens.weight";

// Model::load fails with one line naming `what`; `fusecheck generate` exits 3 with the same kind of
// one-line error, in bounded time.
void ExpectEngineError(const EngineModel& m, std::string_view what) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = Model::load(m.dir);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  ASSERT_FALSE(r.ok()) << "Model::load accepted a broken checkpoint (expected \"" << what << "\")";
  EXPECT_NE(r.error().message.find(what), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().message.find('\n'), std::string::npos) << r.error().message;
  RunResult cli = run_cli("generate " + shq(m.dir) + " --token-ids 1,2 -n 2", "timeout 20");
  EXPECT_EQ(cli.exit_code, 3) << cli.err;
  EXPECT_EQ(cli.out, "");
  EXPECT_EQ(std::count(cli.err.begin(), cli.err.end(), '\n'), 1) << cli.err;
  EXPECT_NE(cli.err.find(what), std::string::npos) << cli.err;
}

TEST(HostileEngine, ControlFixtureLoadsAndGenerates) {
  EngineModel m;
  m.write();  // rewritten through the test builder: the other cases differ by one edit only
  auto r = Model::load(m.dir);
  ASSERT_TRUE(r.ok()) << r.error().message;
  RunResult cli = run_cli("generate " + shq(m.dir) + " --token-ids 1,2 -n 2");
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
}

TEST(HostileEngine, RightNameWrongShape) {
  EngineModel m;
  TensorSpec& q = m.weights.at(kQ);
  std::swap(q.shape[0], q.shape[1]);  // same byte count, transposed
  ASSERT_NE(q.shape[0], q.shape[1]);
  m.write();
  ExpectEngineError(m, kQ);
}

TEST(HostileEngine, RightNameDtypeI8) {
  EngineModel m;
  TensorSpec& q = m.weights.at(kQ);
  q.dtype = "I8";
  q.data.resize(q.shape[0] * q.shape[1]);  // one byte per element
  m.write();
  ExpectEngineError(m, kQ);
}

TEST(HostileEngine, RightNameDtypeF64) {
  EngineModel m;
  TensorSpec& e = m.weights.at(kEmbed);
  e.dtype = "F64";
  e.data.resize(e.shape[0] * e.shape[1] * 8);
  m.write();
  ExpectEngineError(m, kEmbed);
}

TEST(HostileEngine, MissingTensor) {
  EngineModel m;
  m.weights.remove(kDown);
  m.write();
  ExpectEngineError(m, kDown);
}

TEST(HostileEngine, VocabSizeLargerThanEmbeddingRows) {
  EngineModel m;
  m.config["vocab_size"] = 1024;  // embed_tokens has 512 rows
  m.write();
  ExpectEngineError(m, kEmbed);
}

TEST(HostileEngine, VocabSizeSmallerThanEmbeddingRows) {
  EngineModel m;
  m.config["vocab_size"] = 100;
  m.write();
  ExpectEngineError(m, kEmbed);
}

TEST(HostileEngine, UntiedEmbeddingsWithoutLmHead) {
  EngineModel m;
  m.config["tie_word_embeddings"] = false;
  m.write();
  ExpectEngineError(m, "lm_head.weight");
}

// Absurd or mistyped config.json values: an error naming config.json, fast, with no huge
// allocation (the engine would otherwise size caches and buffers from these numbers).
struct BadConfig {
  const char* key;
  json value;
};
void PrintTo(const BadConfig& c, std::ostream* os) {  // readable test names in ctest
  *os << c.key << "=" << c.value.dump();
}
class HostileEngineConfig : public ::testing::TestWithParam<BadConfig> {};

TEST_P(HostileEngineConfig, IsAnErrorNamingConfigJson) {
  EngineModel m;
  m.config[GetParam().key] = GetParam().value;
  m.write();
  ExpectEngineError(m, "config.json");
}

INSTANTIATE_TEST_SUITE_P(
    HostileEngine, HostileEngineConfig,
    ::testing::Values(BadConfig{"num_hidden_layers", 1e9}, BadConfig{"num_hidden_layers", -1},
                      BadConfig{"num_hidden_layers", 0}, BadConfig{"num_attention_heads", -4},
                      BadConfig{"num_attention_heads", 0}, BadConfig{"num_key_value_heads", 3},
                      BadConfig{"head_dim", 0}, BadConfig{"head_dim", -32},
                      BadConfig{"hidden_size", "64"}, BadConfig{"hidden_size", 1e18},
                      BadConfig{"intermediate_size", 1ll << 40}, BadConfig{"vocab_size", -1},
                      BadConfig{"rms_norm_eps", "small"}, BadConfig{"rope_theta", -1},
                      BadConfig{"max_position_embeddings", -5}),
    [](const auto& info) {
      std::string n = std::string(info.param.key) + "_" + std::to_string(info.index);
      return n;
    });

}  // namespace
}  // namespace fusecheck
