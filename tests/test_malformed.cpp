// Hostile and broken inputs: every malformed safetensors file, config.json, index and directory
// layout must give one clear error line naming the file (or, for bad gain values, a finding), never
// a crash, a hang or a huge allocation. Files are built byte by byte by a small test-side writer so
// each case breaks exactly one thing in an otherwise valid checkpoint.
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "check/check.h"
#include "fixture/fixture.h"
#include "io/safetensors.h"
#include "testing.h"

namespace fusecheck {
namespace {

using nlohmann::json;
using testing::read_text;
using testing::run_cli;
using testing::RunResult;
using testing::TempDir;
using testing::write_text;
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Test-side safetensors writer: correct bytes by default, with hooks to break one thing.

struct TensorSpec {
  std::string name;
  std::string dtype;
  std::vector<uint64_t> shape;
  std::string data;                                      // raw little-endian bytes
  std::optional<std::pair<uint64_t, uint64_t>> offsets;  // default: packed in order
  std::optional<std::string> shape_json, offsets_json;   // raw JSON text, replaces the above
};

// Ways to damage the assembled file.
struct Tamper {
  std::function<std::string(std::string)> header;  // edits the header JSON text
  std::optional<uint64_t> header_len;              // overrides the 8-byte length field
  std::optional<size_t> file_size;                 // truncates (or zero-extends) the file
  std::string append;                              // bytes added after the data region
};

Tamper with_header(std::function<std::string(std::string)> edit) {
  Tamper t;
  t.header = std::move(edit);
  return t;
}
Tamper with_header_len(uint64_t n) {
  Tamper t;
  t.header_len = n;
  return t;
}
Tamper with_file_size(size_t n) {
  Tamper t;
  t.file_size = n;
  return t;
}
Tamper with_append(std::string bytes) {
  Tamper t;
  t.append = std::move(bytes);
  return t;
}

std::string f32_bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char((v >> (8 * i)) & 0xff);
  return s;
}

class SafetensorsBuilder {
 public:
  SafetensorsBuilder& add(std::string name, std::string dtype, std::vector<uint64_t> shape,
                          std::string data) {
    tensors_.push_back(
        {std::move(name), std::move(dtype), std::move(shape), std::move(data), {}, {}, {}});
    return *this;
  }
  SafetensorsBuilder& add_f32(std::string name, const std::vector<float>& values) {
    return add(std::move(name), "F32", {values.size()}, f32_bytes(values));
  }
  // The tensor called `name` (throws when absent, so a typo fails the test loudly).
  TensorSpec& at(const std::string& name) {
    for (auto& t : tensors_)
      if (t.name == name) return t;
    throw std::runtime_error("SafetensorsBuilder: no tensor " + name);
  }
  void remove(const std::string& name) {
    auto it = std::find_if(tensors_.begin(), tensors_.end(),
                           [&](const TensorSpec& t) { return t.name == name; });
    if (it == tensors_.end()) throw std::runtime_error("SafetensorsBuilder: no tensor " + name);
    tensors_.erase(it);
  }
  const std::vector<TensorSpec>& tensors() const { return tensors_; }

  // The header JSON, keys in insertion order (duplicates kept), no padding. Names and dtypes are
  // written verbatim, not JSON-escaped, so a test can plant raw bytes.
  std::string header() const {
    std::string h = "{\"__metadata__\":{\"format\":\"pt\"}";
    uint64_t pos = 0;
    for (const auto& t : tensors_) {
      std::string shape = "[";
      for (size_t i = 0; i < t.shape.size(); ++i)
        shape += (i ? "," : "") + std::to_string(t.shape[i]);
      shape += "]";
      uint64_t begin = t.offsets ? t.offsets->first : pos;
      uint64_t end = t.offsets ? t.offsets->second : pos + t.data.size();
      pos += t.data.size();
      h += ",\"" + t.name + "\":{\"dtype\":\"" + t.dtype +
           "\",\"shape\":" + t.shape_json.value_or(shape) + ",\"data_offsets\":" +
           t.offsets_json.value_or("[" + std::to_string(begin) + "," + std::to_string(end) + "]") +
           "}";
    }
    return h + "}";
  }
  std::string data() const {
    std::string d;
    for (const auto& t : tensors_) d += t.data;
    return d;
  }
  std::string bytes(const Tamper& tamper = {}) const {
    std::string h = header();
    if (tamper.header) h = tamper.header(h);
    std::string out = le64(tamper.header_len.value_or(h.size())) + h + data() + tamper.append;
    if (tamper.file_size) out.resize(*tamper.file_size);
    return out;
  }
  void write(const std::string& path, const Tamper& tamper = {}) const {
    write_text(path, bytes(tamper));
  }

 private:
  std::vector<TensorSpec> tensors_;
};

// Replaces the one occurrence of `from` (throws when it is absent or repeated).
std::string replace_once(std::string s, std::string_view from, std::string_view to) {
  size_t p = s.find(from);
  if (p == std::string::npos || s.find(from, p + 1) != std::string::npos)
    throw std::runtime_error("replace_once: need exactly one \"" + std::string(from) + "\"");
  return s.replace(p, from.size(), to);
}

// ---------------------------------------------------------------------------------------------
// A minimal valid qwen3 model directory: config.json and the norm tensors the qwen3 profile reads.

constexpr uint64_t kHidden = 8, kHeadDim = 4;

std::string layer_tensor(int layer, const char* what) {
  return "model.layers." + std::to_string(layer) + "." + what;
}
std::string k_norm(int layer) {
  return layer_tensor(layer, "self_attn.k_norm.weight");
}

json tiny_config(int layers) {
  return {{"architectures", {"Qwen3ForCausalLM"}},
          {"model_type", "qwen3"},
          {"hidden_size", kHidden},
          {"intermediate_size", 16},
          {"num_hidden_layers", layers},
          {"num_attention_heads", 2},
          {"num_key_value_heads", 1},
          {"head_dim", kHeadDim},
          {"vocab_size", 16},
          {"max_position_embeddings", 128},
          {"rms_norm_eps", 1e-6},
          {"rope_theta", 1000000},
          {"tie_word_embeddings", true},
          {"torch_dtype", "float32"}};
}

// The norms of `first..last` layers (and the final norm when `final_norm`), F32 ones.
SafetensorsBuilder tiny_norms(int first, int last, bool final_norm) {
  SafetensorsBuilder b;
  const std::vector<float> hidden(kHidden, 1.0f), head(kHeadDim, 1.0f);
  for (int l = first; l <= last; ++l) {
    b.add_f32(layer_tensor(l, "input_layernorm.weight"), hidden);
    b.add_f32(layer_tensor(l, "post_attention_layernorm.weight"), hidden);
    b.add_f32(layer_tensor(l, "self_attn.q_norm.weight"), head);
    b.add_f32(k_norm(l), head);
  }
  if (final_norm) b.add_f32("model.norm.weight", hidden);
  return b;
}

// A model directory in its own TempDir (`root`), at root/model. Edit config/weights, then write().
struct TinyModel {
  explicit TinyModel(int layers = 1)
      : config(tiny_config(layers)), weights(tiny_norms(0, layers - 1, true)) {
    fs::create_directories(dir);
  }
  void write(const Tamper& tamper = {}) const {
    write_text(dir + "/config.json", config.dump(2));
    weights.write(st_path(), tamper);
  }
  std::string st_path() const { return dir + "/model.safetensors"; }

  TempDir root;
  std::string dir = root / "model";
  json config;
  SafetensorsBuilder weights;
};

// The same model split over two shards plus model.safetensors.index.json. Edit, then write().
struct ShardedModel {
  static constexpr const char* kShard1 = "model-00001-of-00002.safetensors";
  static constexpr const char* kShard2 = "model-00002-of-00002.safetensors";

  ShardedModel() : shard1(tiny_norms(0, 0, false)), shard2(tiny_norms(1, 1, true)) {
    fs::create_directories(dir);
    json wm = json::object();
    for (const auto& t : shard1.tensors()) wm[t.name] = kShard1;
    for (const auto& t : shard2.tensors()) wm[t.name] = kShard2;
    index = {{"metadata", {{"total_size", shard1.data().size() + shard2.data().size()}}},
             {"weight_map", wm}};
  }
  void write() const {
    write_text(dir + "/config.json", config.dump(2));
    shard1.write(dir + "/" + kShard1);
    shard2.write(dir + "/" + kShard2);
    write_text(index_path(), index.dump(2));
  }
  std::string index_path() const { return dir + "/model.safetensors.index.json"; }

  TempDir root;
  std::string dir = root / "model";
  json config = tiny_config(2);
  SafetensorsBuilder shard1, shard2;
  json index;
};

// ---------------------------------------------------------------------------------------------
// Assertions.

CheckOptions no_cache() {
  CheckOptions o;
  o.use_cache = false;
  o.read_env = false;  // a FUSECHECK_FORCE_STATUS in the environment must not change results
  return o;
}

Result<CheckResult> check(const std::string& dir) {
  return check_model(dir, no_cache());
}

// An error, on one line, that names `path` and contains `what`.
template <class T>
::testing::AssertionResult IsError(const Result<T>& r, std::string_view path,
                                   std::string_view what) {
  if (r.ok())
    return ::testing::AssertionFailure()
           << "expected an error naming " << path << " with \"" << what << "\", got success";
  const std::string& m = r.error().message;
  if (m.find(path) == std::string::npos)
    return ::testing::AssertionFailure() << "error does not name " << path << ": " << m;
  if (m.find(what) == std::string::npos)
    return ::testing::AssertionFailure() << "error lacks \"" << what << "\": " << m;
  if (m.find('\n') != std::string::npos)
    return ::testing::AssertionFailure() << "error is not one line: " << m;
  return ::testing::AssertionSuccess() << m;
}

std::string shq(const std::string& s) {
  return "'" + s + "'";
}

// The CLI's contract for unreadable input: exit 3, nothing on stdout, one "fusecheck: error:" line.
void ExpectCliInputError(const std::string& dir, std::string_view what) {
  RunResult r = run_cli("check " + shq(dir) + " --no-cache");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(r.err.starts_with("fusecheck: error: ")) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(r.err.ends_with("\n")) << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
}

// Runs a shell command line, capturing stdout and stderr (run_cli runs only the fusecheck binary).
RunResult run_command(const std::string& cmd) {
  TempDir io;
  int status = std::system((cmd + " >" + (io / "out") + " 2>" + (io / "err")).c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(io / "out");
  r.err = read_text(io / "err");
  return r;
}

bool has_finding(const CheckResult& r, const std::string& severity, std::string_view text) {
  for (const auto& f : r.score.findings)
    if (f.severity == severity && f.message.find(text) != std::string::npos) return true;
  return false;
}

// ---------------------------------------------------------------------------------------------
// Positive controls: without them every error test below could pass for the wrong reason.

TEST(MalformedControl, ValidSingleFileModelIsCompatible) {
  TinyModel m(2);
  m.write();
  auto r = check(m.dir);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->verdict, Verdict::kCompatible);
  EXPECT_EQ(r->architecture, "qwen3");
  EXPECT_EQ(r->analysis.num_layers, 2);
  EXPECT_TRUE(r->score.findings.empty());
  RunResult cli = run_cli("check " + shq(m.dir) + " --no-cache");
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ(cli.err, "");
}

TEST(MalformedControl, ValidShardedModelIsCompatible) {
  ShardedModel m;
  m.write();
  auto r = check(m.dir);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->verdict, Verdict::kCompatible);
  EXPECT_EQ(r->analysis.num_layers, 2);
}

TEST(MalformedControl, BuilderWritesWhatTheReaderExpects) {
  TempDir t;
  SafetensorsBuilder b;
  b.add_f32("a", {1, 2, 3}).add("b", "BF16", {2, 1}, std::string("\x80\x3f\x00\x40", 4));
  b.write(t / "x.safetensors");
  auto f = SafetensorsFile::open(t / "x.safetensors");
  ASSERT_TRUE(f.ok()) << f.error().message;
  ASSERT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const TensorInfo* a = f->find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->offset, 8 + b.header().size());
  auto av = f->read_f32(*a);
  ASSERT_TRUE(av.ok());
  EXPECT_EQ(*av, (std::vector<float>{1, 2, 3}));
  const TensorInfo* bt = f->find("b");
  ASSERT_NE(bt, nullptr);
  EXPECT_EQ(bt->shape, (std::vector<uint64_t>{2, 1}));
  auto bv = f->read_f32(*bt);
  ASSERT_TRUE(bv.ok());
  EXPECT_EQ(*bv, (std::vector<float>{1.0f, 2.0f}));
}

// ---------------------------------------------------------------------------------------------
// The 8-byte length field and the header.

TEST(MalformedSafetensors, EmptyFile) {
  TinyModel m;
  m.write(with_file_size(0));
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "truncated: 0 bytes"));
  ExpectCliInputError(m.dir, "truncated: 0 bytes");
}

TEST(MalformedSafetensors, FourByteFile) {
  TinyModel m;
  m.write(with_file_size(4));
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "truncated: 4 bytes"));
}

TEST(MalformedSafetensors, HeaderLengthTwoToThe63) {
  TinyModel m;
  m.write(with_header_len(uint64_t(1) << 63));
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "header length 9223372036854775808 exceeds"));
  ExpectCliInputError(m.dir, "exceeds");
}

TEST(MalformedSafetensors, HeaderLengthOverTheCapInASmallFile) {
  TinyModel m;
  m.write(with_header_len(kMaxHeaderBytes + 1));
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "header length 100000001 exceeds"));
}

TEST(MalformedSafetensors, HeaderLengthPastEndOfFile) {
  TinyModel m;
  const uint64_t size = 8 + m.weights.header().size() + m.weights.data().size();
  m.write(with_header_len(size));  // plausible, but more than the file holds after the length field
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "runs past the end"));
}

TEST(MalformedSafetensors, HeaderLengthTooSmallForJson) {
  TinyModel m;
  m.write(with_header_len(1));
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "too small"));
}

TEST(MalformedSafetensors, HeaderNotJson) {
  TinyModel m;
  m.write(with_header([](std::string h) { return replace_once(h, "{\"__metadata__\"", "{__x"); }));
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "header is not valid JSON"));
  ExpectCliInputError(m.dir, "header is not valid JSON");
}

TEST(MalformedSafetensors, HeaderJsonNotAnObject) {
  TinyModel m;
  m.write(with_header([](std::string) { return std::string("[1, 2, 3]"); }));
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "header must be a JSON object"));
}

TEST(MalformedSafetensors, HeaderWithInvalidUtf8) {
  TinyModel m;
  m.weights.add("model.\xff\xfe.weight", "F32", {1}, f32_bytes({1}));
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "header is not valid JSON"));
  ExpectCliInputError(m.dir, "header is not valid JSON");
}

TEST(MalformedSafetensors, DuplicateTensorNames) {
  TinyModel m;
  m.weights.add_f32("model.norm.weight", std::vector<float>(kHidden, 2.0f));
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "\"model.norm.weight\" appears twice"));
}

// ---------------------------------------------------------------------------------------------
// data_offsets must tile the data region exactly. Layer-0 layout (F32): input [0,32), post [32,64),
// q_norm [64,80), k_norm [80,96), final norm [96,128).

TEST(MalformedSafetensors, OverlappingOffsets) {
  TinyModel m;
  m.weights.at("model.norm.weight").offsets = {{88, 120}};
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "\"model.norm.weight\" starts at data offset 88"));
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "overlap"));
}

TEST(MalformedSafetensors, GapBetweenTensors) {
  TinyModel m;
  m.weights.at("model.norm.weight").offsets = {{100, 132}};
  m.write(with_append("pad!"));  // data region 132 bytes, so only the gap is wrong
  EXPECT_TRUE(
      IsError(check(m.dir), m.st_path(), "\"model.norm.weight\" starts at data offset 100"));
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "gap"));
}

TEST(MalformedSafetensors, OffsetsPastEndOfData) {
  TinyModel m;
  const size_t size = 8 + m.weights.header().size() + m.weights.data().size();
  m.write(with_file_size(size - 4));  // a truncated download
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "cover 128 data bytes but the file holds 124"));
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "truncated file"));
  ExpectCliInputError(m.dir, "truncated file");
}

TEST(MalformedSafetensors, BackwardsOffsets) {
  TinyModel m;
  m.weights.at("model.norm.weight").offsets = {{128, 96}};
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "data_offsets [128, 96] run backwards"));
}

TEST(MalformedSafetensors, TrailingBytesAfterLastTensor) {
  TinyModel m;
  m.write(with_append(std::string(4, '\0')));
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "trailing bytes"));
}

// ---------------------------------------------------------------------------------------------
// Per-tensor fields.

TEST(MalformedSafetensors, ShapeProductOverflows64Bits) {
  TinyModel m;
  m.weights.at("model.norm.weight").shape_json = "[4294967296,4294967296,2]";
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "shape product overflows 64 bits"));
}

TEST(MalformedSafetensors, ByteCountOverflows64Bits) {
  TinyModel m;
  // numel = 2^62 + 1 fits in 64 bits; numel * 4 bytes wraps to 4. The error must not claim the
  // tensor needs 4 bytes.
  m.weights.at("model.norm.weight").shape_json = "[4611686018427387905]";
  m.write();
  auto r = check(m.dir);
  EXPECT_TRUE(IsError(r, m.st_path(), "\"model.norm.weight\""));
  EXPECT_TRUE(IsError(r, m.st_path(), "overflows 64 bits"));
}

TEST(MalformedSafetensors, DtypeTimesShapeIsNotTheByteCount) {
  TinyModel m;
  m.weights.at("model.norm.weight").shape = {7};
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "need 28 bytes but data_offsets give 32"));
}

TEST(MalformedSafetensors, UnknownDtype) {
  TinyModel m;
  m.weights.at("model.norm.weight").dtype = "F33";
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "unknown dtype \"F33\""));
}

TEST(MalformedSafetensors, NegativeShapeEntry) {
  TinyModel m;
  m.weights.at("model.norm.weight").shape_json = "[-8]";
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "shape entries must be non-negative integers"));
}

TEST(MalformedSafetensors, ThreeDataOffsets) {
  TinyModel m;
  m.weights.at("model.norm.weight").offsets_json = "[96,128,160]";
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "data_offsets must be [begin, end]"));
}

TEST(MalformedSafetensors, ZeroSizeTensorIsAccepted) {
  TempDir t;
  SafetensorsBuilder b;
  b.add("empty_first", "F32", {0}, "")
      .add_f32("a", {1, 2})
      .add("empty_mid", "BF16", {3, 0}, "")
      .add_f32("b", {3});
  b.write(t / "z.safetensors");
  auto f = SafetensorsFile::open(t / "z.safetensors");
  ASSERT_TRUE(f.ok()) << f.error().message;
  const TensorInfo* e = f->find("empty_mid");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->numel, 0u);
  EXPECT_EQ(e->nbytes, 0u);
  auto ev = f->read_f32(*e);
  ASSERT_TRUE(ev.ok()) << ev.error().message;
  EXPECT_TRUE(ev->empty());
  auto bv = f->read_f32(*f->find("b"));
  ASSERT_TRUE(bv.ok());
  EXPECT_EQ(*bv, std::vector<float>{3});
}

TEST(MalformedSafetensors, NormWithUnsupportedDtype) {
  TinyModel m;
  TensorSpec& k = m.weights.at(k_norm(0));
  k.dtype = "I8";
  k.data = std::string(kHeadDim, '\1');
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "\"" + k_norm(0) + "\" has dtype I8"));
  ExpectCliInputError(m.dir, "has dtype I8");
}

TEST(MalformedSafetensors, Fp8MatrixIsAcceptedByTheReader) {
  TinyModel m;
  m.weights.add("model.embed_tokens.weight", "F8_E4M3", {16, kHidden},
                std::string(16 * kHidden, '\x38'));
  m.write();
  auto f = SafetensorsFile::open(m.st_path());
  ASSERT_TRUE(f.ok()) << f.error().message;
  const TensorInfo* e = f->find("model.embed_tokens.weight");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->dtype, DType::F8_E4M3);
  EXPECT_EQ(e->nbytes, 16 * kHidden);
  // fusecheck computes only with float types; reading it as fp32 is a clear error, not garbage.
  EXPECT_TRUE(IsError(f->read_f32(*e), m.st_path(), "has dtype F8_E4M3"));
  // The check reads only norms, so an fp8-quantized checkpoint with float norms checks fine.
  auto r = check(m.dir);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->verdict, Verdict::kCompatible);
}

// ---------------------------------------------------------------------------------------------
// Bad gain values are findings, not errors.

std::vector<float> head_gains(float first, float rest = 1.0f) {
  std::vector<float> g(kHeadDim, rest);
  g[0] = first;
  return g;
}

Result<CheckResult> check_with(const std::string& tensor, const std::vector<float>& gains,
                               TinyModel& m) {
  m.weights.at(tensor).data = f32_bytes(gains);
  m.write();
  return check(m.dir);
}

TEST(MalformedGains, NanGainIsIncompatible) {
  TinyModel m;
  auto r = check_with(k_norm(0), head_gains(NAN), m);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->verdict, Verdict::kIncompatible);
  EXPECT_TRUE(has_finding(*r, "error", "1 NaN and 0 Inf gains")) << r->score.findings.size();
  RunResult cli = run_cli("check " + shq(m.dir) + " --no-cache");
  EXPECT_EQ(cli.exit_code, 2) << cli.err;
}

TEST(MalformedGains, InfGainIsIncompatible) {
  TinyModel m;
  auto r = check_with(k_norm(0), head_gains(-INFINITY), m);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->verdict, Verdict::kIncompatible);
  EXPECT_TRUE(has_finding(*r, "error", "0 NaN and 1 Inf gains"));
}

TEST(MalformedGains, NanInBlockNormIsIncompatible) {
  TinyModel m;  // block norms are not scored, but a NaN there still poisons every activation
  auto r =
      check_with(layer_tensor(0, "input_layernorm.weight"), std::vector<float>(kHidden, NAN), m);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->verdict, Verdict::kIncompatible);
  EXPECT_TRUE(has_finding(*r, "error", "8 NaN"));
}

TEST(MalformedGains, NegativeGainIsAtLeastWarning) {
  TinyModel m;
  auto r = check_with(k_norm(0), head_gains(-1.0f), m);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_GE(int(r->verdict), int(Verdict::kWarning));
  EXPECT_TRUE(has_finding(*r, "warning", "negative effective gains"));
}

TEST(MalformedGains, ZeroMedianIsAtLeastWarning) {
  TinyModel m;
  auto r = check_with(k_norm(0), std::vector<float>(kHeadDim, 0.0f), m);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_GE(int(r->verdict), int(Verdict::kWarning));
  EXPECT_TRUE(has_finding(*r, "warning", "median gain is 0"));
}

TEST(MalformedGains, ZeroMedianWithOneLargeGainIsAtLeastWarning) {
  TinyModel m;  // ratio max/median is infinite
  auto r = check_with(k_norm(0), {0.0f, 0.0f, 0.0f, 5.0f}, m);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_GE(int(r->verdict), int(Verdict::kWarning));
  EXPECT_TRUE(has_finding(*r, "warning", "median gain is 0"));
}

// ---------------------------------------------------------------------------------------------
// config.json.

TEST(MalformedConfig, Missing) {
  TinyModel m;
  m.write();
  fs::remove(m.dir + "/config.json");
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/config.json", "missing"));
  ExpectCliInputError(m.dir, "config.json: missing");
}

TEST(MalformedConfig, NotJson) {
  TinyModel m;
  m.write();
  write_text(m.dir + "/config.json", "{\"model_type\": \"qwen3\", ");  // truncated download
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/config.json", "not valid JSON"));
}

TEST(MalformedConfig, NotAnObject) {
  TinyModel m;
  m.write();
  write_text(m.dir + "/config.json", "[\"qwen3\"]");
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/config.json", "expected a JSON object"));
}

TEST(MalformedConfig, BillionLayersFailsFast) {
  TinyModel m;
  m.config["num_hidden_layers"] = 1e9;
  m.write();
  auto t0 = std::chrono::steady_clock::now();
  auto r = check(m.dir);
  auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(IsError(r, m.dir + "/config.json", "\"num_hidden_layers\" = 1000000000"));
  EXPECT_LT(elapsed, std::chrono::seconds(2));
}

TEST(MalformedConfig, HugeFloatLayerCountIsOutOfRange) {
  TinyModel m;  // integral but far beyond int64: a range error (converting it to int64 is UB)
  m.config["num_hidden_layers"] = 1e300;
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/config.json",
                      "\"num_hidden_layers\" = 1e+300 is outside the plausible range"));
}

TEST(MalformedConfig, MoreLayersThanTheCheckpointHolds) {
  TinyModel m;  // in range, but the weights hold one layer: an error about layer 1, quickly
  m.config["num_hidden_layers"] = 10000;
  m.write();
  auto t0 = std::chrono::steady_clock::now();
  auto r = check(m.dir);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_TRUE(IsError(r, m.dir, "config.json says 10000 layers"));
  EXPECT_TRUE(IsError(r, m.dir, "model.layers.1."));
}

TEST(MalformedConfig, NegativeAttentionHeads) {
  TinyModel m;
  m.config["num_attention_heads"] = -2;
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/config.json", "\"num_attention_heads\" = -2"));
}

TEST(MalformedConfig, HeadDimZero) {
  TinyModel m;
  m.config["head_dim"] = 0;
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/config.json", "\"head_dim\" = 0 is outside"));
}

TEST(MalformedConfig, HiddenSizeAsString) {
  TinyModel m;
  m.config["hidden_size"] = "8";
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/config.json", "\"hidden_size\" must be an integer"));
  ExpectCliInputError(m.dir, "\"hidden_size\" must be an integer");
}

TEST(MalformedConfig, UnknownModelTypeListsKnownTypes) {
  TinyModel m;
  m.config["model_type"] = "gpt9";
  m.write();
  auto r = check(m.dir);
  EXPECT_TRUE(IsError(r, m.dir + "/config.json", "model_type \"gpt9\""));
  EXPECT_TRUE(IsError(r, m.dir + "/config.json", "known: qwen3, qwen3_moe, llama"));
}

TEST(MalformedConfig, MissingModelType) {
  TinyModel m;
  m.config.erase("model_type");
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/config.json", "missing \"model_type\""));
}

// ---------------------------------------------------------------------------------------------
// Norm tensors the architecture profile requires.

TEST(MalformedCheckpoint, MissingNormTensor) {
  TinyModel m(2);
  m.weights.remove(k_norm(1));
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.dir, "missing tensor \"" + k_norm(1) + "\""));
}

TEST(MalformedCheckpoint, NoLayerZeroNormsAtAnyPrefix) {
  TinyModel m;
  m.weights.remove(layer_tensor(0, "input_layernorm.weight"));
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.dir, "not a qwen3 model"));
}

TEST(MalformedCheckpoint, NormWithWrongShape) {
  TinyModel m;
  m.weights.at(k_norm(0)).shape = {2, 2};
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "has shape [2, 2], expected [4]"));
}

// ---------------------------------------------------------------------------------------------
// Sharded checkpoints and model.safetensors.index.json.

void ExpectRefusedEntry(ShardedModel& m, const std::string& entry) {
  m.index["weight_map"][k_norm(1)] = entry;
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.index_path(), "\"" + entry + "\" is not a plain file name"));
}

TEST(MalformedIndex, ParentDirectoryEntryIsRefused) {
  ShardedModel m;
  m.shard2.write(m.root / "x.safetensors");  // a valid file is there: the name alone is refused
  ExpectRefusedEntry(m, "../x.safetensors");
}

TEST(MalformedIndex, AbsolutePathEntryIsRefused) {
  ShardedModel m;
  ExpectRefusedEntry(m, "/etc/passwd");
}

TEST(MalformedIndex, SubdirectoryEntryIsRefused) {
  ShardedModel m;
  m.write();
  fs::create_directories(m.dir + "/sub");
  m.shard2.write(m.dir + "/sub/dir.safetensors");
  m.index["weight_map"][k_norm(1)] = "sub/dir.safetensors";
  write_text(m.index_path(), m.index.dump());
  EXPECT_TRUE(IsError(check(m.dir), m.index_path(), "is not a plain file name"));
  ExpectCliInputError(m.dir, "not a plain file name");
}

TEST(MalformedIndex, MissingShard) {
  ShardedModel m;
  m.write();
  fs::remove(m.dir + "/" + ShardedModel::kShard2);
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/" + ShardedModel::kShard2,
                      "missing; model.safetensors.index.json lists it as a shard"));
}

TEST(MalformedIndex, TensorNotInItsShard) {
  ShardedModel m;
  m.index["weight_map"]["model.layers.0.mlp.gate_proj.weight"] = ShardedModel::kShard1;
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.index_path(),
                      "\"model.layers.0.mlp.gate_proj.weight\" in " +
                          std::string(ShardedModel::kShard1) +
                          ", but that shard does not hold it"));
}

TEST(MalformedIndex, TensorInTheOtherShard) {
  ShardedModel m;
  m.index["weight_map"][k_norm(1)] = ShardedModel::kShard1;  // it is in shard 2
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.index_path(), "that shard does not hold it"));
}

TEST(MalformedIndex, TensorInTwoShards) {
  ShardedModel m;
  m.shard2.add_f32(k_norm(0), head_gains(1));
  m.write();
  EXPECT_TRUE(
      IsError(check(m.dir), m.dir + "/" + ShardedModel::kShard2, "shards must not repeat tensors"));
}

TEST(MalformedIndex, NotJson) {
  ShardedModel m;
  m.write();
  write_text(m.index_path(), "{\"weight_map\": {");
  EXPECT_TRUE(IsError(check(m.dir), m.index_path(), "not a valid JSON object"));
}

TEST(MalformedIndex, WeightMapNotAnObject) {
  ShardedModel m;
  m.index["weight_map"] = json::array({ShardedModel::kShard1, ShardedModel::kShard2});
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.index_path(), "expected a \"weight_map\" object"));
}

TEST(MalformedIndex, ShardFileIsBroken) {
  ShardedModel m;
  m.write();
  write_text(m.dir + "/" + ShardedModel::kShard2, "not safetensors at all");
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/" + ShardedModel::kShard2, "header length"));
}

// ---------------------------------------------------------------------------------------------
// Directory layout.

TEST(MalformedCheckpoint, OnlyPickleCheckpoint) {
  TinyModel m;
  write_text(m.dir + "/config.json", m.config.dump());
  write_text(m.dir + "/pytorch_model.bin", "PK\x03\x04 not really a zip");
  auto r = check(m.dir);
  EXPECT_TRUE(IsError(r, m.dir, "pytorch_model.bin"));
  EXPECT_TRUE(IsError(r, m.dir, "pickle"));
  EXPECT_TRUE(IsError(r, m.dir, "Convert it to safetensors"));
  ExpectCliInputError(m.dir, "pickle");
}

TEST(MalformedCheckpoint, NoWeightsAtAll) {
  TinyModel m;
  write_text(m.dir + "/config.json", m.config.dump());
  EXPECT_TRUE(IsError(check(m.dir), m.dir, "no model.safetensors"));
}

TEST(MalformedCheckpoint, ModelDirDoesNotExist) {
  TempDir t;
  EXPECT_TRUE(IsError(check(t / "nope"), t / "nope", "no such model directory"));
  ExpectCliInputError(t / "nope", "no such model directory");
}

TEST(MalformedCheckpoint, ModelDirIsAFile) {
  TinyModel m;
  m.write();
  EXPECT_TRUE(IsError(check(m.dir + "/config.json"), m.dir + "/config.json", "found a file"));
  ExpectCliInputError(m.dir + "/config.json", "found a file");
}

TEST(MalformedCheckpoint, SafetensorsIsADirectory) {
  TinyModel m;
  write_text(m.dir + "/config.json", m.config.dump());
  fs::create_directories(m.st_path());
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "is a directory"));
}

TEST(MalformedCheckpoint, SafetensorsUnreadable) {
  if (geteuid() == 0) GTEST_SKIP() << "running as root, which ignores file permissions";
  TinyModel m;
  m.write();
  ASSERT_EQ(::chmod(m.st_path().c_str(), 0), 0);
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "cannot open"));
  ExpectCliInputError(m.dir, "cannot open");
}

TEST(MalformedCheckpoint, SafetensorsIsAFifoDoesNotHang) {
  TinyModel m;
  write_text(m.dir + "/config.json", m.config.dump());
  ASSERT_EQ(::mkfifo(m.st_path().c_str(), 0600), 0);
  // Opening a FIFO for reading blocks until a writer appears; the check must refuse it instead.
  RunResult r = run_cli("check " + shq(m.dir) + " --no-cache", "timeout 3");
  EXPECT_NE(r.exit_code, 124) << "fusecheck hung opening a FIFO";
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
}

TEST(MalformedCheckpoint, ConfigIsAFifoDoesNotHang) {
  TinyModel m;
  m.weights.write(m.st_path());
  ASSERT_EQ(::mkfifo((m.dir + "/config.json").c_str(), 0600), 0);
  RunResult r = run_cli("check " + shq(m.dir) + " --no-cache", "timeout 3");
  EXPECT_NE(r.exit_code, 124) << "fusecheck hung opening a FIFO";
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
}

TEST(MalformedCheckpoint, FileTruncatedAfterOpen) {
  TinyModel m;
  m.write();
  auto f = SafetensorsFile::open(m.st_path());
  ASSERT_TRUE(f.ok()) << f.error().message;
  const TensorInfo* first = f->find(layer_tensor(0, "input_layernorm.weight"));
  const TensorInfo* last = f->find("model.norm.weight");
  ASSERT_TRUE(first && last);
  // Keep the header and the first tensor; cut into the rest, under the open file.
  ASSERT_EQ(::truncate(m.st_path().c_str(), off_t(first->offset + first->nbytes + 3)), 0);
  auto ok = f->read_f32(*first);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(*ok, std::vector<float>(kHidden, 1.0f));
  EXPECT_TRUE(IsError(f->read_f32(*last), m.st_path(), "truncated after it was opened"));
  EXPECT_TRUE(IsError(f->read_bytes(*f->find(k_norm(0))), m.st_path(), "file ended"));
  // A fresh check sees the short file at open.
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "truncated file"));
}

// Move-assigning onto an open file must release the old one exactly once. Run in a child process:
// a double free aborts, and must not take the rest of the suite with it.
TEST(MalformedReader, MoveAssignOntoAnOpenFile) {
  TinyModel m;
  m.write();
  const std::string other = m.root / "a-second-file-with-a-long-name.safetensors";
  m.weights.write(other);
  EXPECT_EXIT(
      {
        auto a = SafetensorsFile::open(m.st_path());
        auto b = SafetensorsFile::open(other);
        if (!a.ok() || !b.ok()) std::_Exit(10);
        SafetensorsFile x = std::move(*a);
        x = std::move(*b);
        bool same = x.path() == other && x.find("model.norm.weight") != nullptr &&
                    x.read_f32(*x.find("model.norm.weight")).ok();
        std::_Exit(same ? 0 : 11);
      },
      ::testing::ExitedWithCode(0), "");
}

// ---------------------------------------------------------------------------------------------
// Error messages are one line, even when names inside the files carry control characters.

TEST(MalformedCli, NewlineInIndexKeyStaysOneLine) {
  ShardedModel m;
  m.index["weight_map"]["evil\nname"] = "../x.safetensors";
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.index_path(), "is not a plain file name"));
  ExpectCliInputError(m.dir, "not a plain file name");
}

TEST(MalformedCli, NewlineInShardFileNameStaysOneLine) {
  ShardedModel m;
  m.index["weight_map"][k_norm(1)] = "evil\nshard.safetensors";
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.dir, ""));
}

TEST(MalformedCli, NewlineInRepeatedTensorNameStaysOneLine) {
  ShardedModel m;  // "x\ny" is JSON-escaped in both headers: the parsed name holds a newline
  m.shard1.add_f32("model.x\\ny", {1});
  m.shard2.add_f32("model.x\\ny", {1});
  m.write();
  EXPECT_TRUE(
      IsError(check(m.dir), m.dir + "/" + ShardedModel::kShard2, "shards must not repeat tensors"));
}

TEST(MalformedCli, NewlineInModelTypeStaysOneLine) {
  TinyModel m;
  m.config["model_type"] = "qwen\nthree";
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/config.json", "unknown architecture"));
}

// ---------------------------------------------------------------------------------------------
// Command-line usage: exit 64 for usage errors, 0 for --help and --version.

TEST(MalformedCli, CheckWithoutModelDir) {
  RunResult r = run_cli("check");
  EXPECT_EQ(r.exit_code, 64);
  EXPECT_NE(r.err.find("MODEL_DIR"), std::string::npos) << r.err;
}

TEST(MalformedCli, UnknownFlag) {
  TinyModel m;
  m.write();
  RunResult r = run_cli("check " + shq(m.dir) + " --no-cache --frobnicate");
  EXPECT_EQ(r.exit_code, 64);
  EXPECT_NE(r.err.find("--frobnicate"), std::string::npos) << r.err;
}

TEST(MalformedCli, BogusFormat) {
  TinyModel m;
  m.write();
  RunResult r = run_cli("check " + shq(m.dir) + " --no-cache --format bogus");
  EXPECT_EQ(r.exit_code, 64);
  EXPECT_TRUE(r.err.starts_with("fusecheck: error: ")) << r.err;
  EXPECT_NE(r.err.find("bogus"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(MalformedCli, BogusColor) {
  TinyModel m;
  m.write();
  RunResult r = run_cli("check " + shq(m.dir) + " --no-cache --color sometimes");
  EXPECT_EQ(r.exit_code, 64);
  EXPECT_NE(r.err.find("sometimes"), std::string::npos) << r.err;
}

TEST(MalformedCli, HelpAndVersion) {
  RunResult h = run_cli("--help");
  EXPECT_EQ(h.exit_code, 0) << h.err;
  EXPECT_NE(h.out.find("check"), std::string::npos) << h.out;
  RunResult ch = run_cli("check --help");
  EXPECT_EQ(ch.exit_code, 0) << ch.err;
  EXPECT_NE(ch.out.find("MODEL_DIR"), std::string::npos) << ch.out;
  RunResult v = run_cli("--version");
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_NE(v.out.find(std::string("fusecheck ") + FUSECHECK_VERSION), std::string::npos) << v.out;
}

// ---------------------------------------------------------------------------------------------
// examples/: check_all.sh and engine_load_example against fixtures.

std::string repo_root() {
  return fs::path(__FILE__).parent_path().parent_path().string();
}
std::string build_dir() {
  return fs::path(FUSECHECK_BINARY).parent_path().string();
}

// Two tiny fixture models under one root: ordinary (COMPATIBLE) and extreme (INCOMPATIBLE).
struct TwoFixtures {
  TwoFixtures() {
    for (const char* p : {"qwen3-0.6b", "qwen3-0.6b-extreme"}) {
      FixtureOptions o;
      o.profile = p;
      o.tiny = true;
      auto s = write_fixture(root / p, o);
      if (!s.ok()) throw std::runtime_error(s.error().message);
    }
  }
  TempDir root;
};

// One row of check_all.sh's table.
std::string row(std::string_view verdict, const std::string& dir) {
  return fmt::format("{:<13} {}\n", verdict, dir);
}

TEST(ExamplesTest, CheckAllSummarisesAndExitsWithTheWorstCode) {
  const std::string script = repo_root() + "/examples/check_all.sh";
  ASSERT_TRUE(fs::exists(script)) << script;
  TwoFixtures fx;
  const std::string cmd = "FUSECHECK=" + shq(FUSECHECK_BINARY) + " bash " + shq(script) + " " +
                          shq(fx.root.path()) + " --no-cache";
  RunResult r = run_command(cmd);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.out.find(row("COMPATIBLE", fx.root / "qwen3-0.6b")), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(row("INCOMPATIBLE", fx.root / "qwen3-0.6b-extreme")), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("summary: 2 models: 1 COMPATIBLE, 0 WARNING, 1 INCOMPATIBLE, 0 ERROR\n"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.err, "");

  // Extra arguments reach fusecheck: a forced verdict changes every row and the exit code.
  RunResult w = run_command(cmd + " --force-status WARNING");
  EXPECT_EQ(w.exit_code, 1) << w.out << w.err;
  EXPECT_NE(w.out.find("summary: 2 models: 0 COMPATIBLE, 2 WARNING, 0 INCOMPATIBLE, 0 ERROR\n"),
            std::string::npos)
      << w.out;

  // A broken model is an ERROR row, its error goes to stderr, and the worst code becomes 3.
  fs::copy(fx.root / "qwen3-0.6b", fx.root / "broken");
  write_text(fx.root / "broken/config.json", "{");
  RunResult r3 = run_command(cmd);
  EXPECT_EQ(r3.exit_code, 3) << r3.out << r3.err;
  EXPECT_NE(r3.out.find(row("ERROR", fx.root / "broken")), std::string::npos) << r3.out;
  EXPECT_NE(r3.out.find("summary: 3 models: 1 COMPATIBLE, 0 WARNING, 1 INCOMPATIBLE, 1 ERROR\n"),
            std::string::npos)
      << r3.out;
  EXPECT_NE(r3.err.find("not valid JSON"), std::string::npos) << r3.err;

  EXPECT_EQ(run_command("bash " + shq(script)).exit_code, 64);
  EXPECT_EQ(run_command("bash " + shq(script) + " " + shq(fx.root / "nope")).exit_code, 64);
  TempDir empty;
  RunResult none = run_command("FUSECHECK=" + shq(FUSECHECK_BINARY) + " bash " + shq(script) + " " +
                               shq(empty.path()));
  EXPECT_EQ(none.exit_code, 3) << none.out << none.err;
  EXPECT_NE(none.err.find("no model directories"), std::string::npos) << none.err;
}

TEST(ExamplesTest, EngineLoadChoosesKernels) {
  const std::string exe = build_dir() + "/examples/engine_load_example";
  if (!fs::exists(exe))
    GTEST_SKIP() << exe << " not built (cmake --build build --target engine_load_example)";
  TwoFixtures fx;
  // The example uses the result cache as an engine would; keep it inside the test's directory.
  const std::string engine =
      "XDG_CACHE_HOME=" + shq(fx.root / "cache") + " FUSECHECK_FORCE_STATUS= " + shq(exe);
  RunResult ok = run_command(engine + " " + shq(fx.root / "qwen3-0.6b"));
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, "kernels: fused\n");
  EXPECT_EQ(ok.err, "");

  const std::string extreme = fx.root / "qwen3-0.6b-extreme";
  RunResult bad = run_command(engine + " " + shq(extreme));
  EXPECT_EQ(bad.exit_code, 0) << bad.err;
  EXPECT_EQ(bad.out, "kernels: standard\n");
  EXPECT_NE(bad.err.find(fallback_warning(extreme)), std::string::npos) << bad.err;

  RunResult forced = run_command(engine + " " + shq(extreme) + " --force-fused");
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_EQ(forced.out, "kernels: fused\n");
  EXPECT_NE(forced.err.find("INCOMPATIBLE"), std::string::npos) << forced.err;

  // The reference kernel profile moves no rounding point: fused is fine even for extreme gains.
  RunResult std_kernels = run_command(engine + " --kernels standard " + shq(extreme));
  EXPECT_EQ(std_kernels.exit_code, 0) << std_kernels.err;
  EXPECT_EQ(std_kernels.out, "kernels: fused\n");

  RunResult missing = run_command(engine + " " + shq(fx.root / "nope"));
  EXPECT_EQ(missing.exit_code, 0) << missing.err;
  EXPECT_EQ(missing.out, "kernels: standard\n");
  EXPECT_NE(missing.err.find("no such model directory"), std::string::npos) << missing.err;

  for (const char* bad_args : {"", "--bogus", "a b", "--kernels"}) {
    RunResult usage = run_command(engine + " " + bad_args);
    EXPECT_EQ(usage.exit_code, 64) << bad_args;
    EXPECT_EQ(usage.out, "") << bad_args;
  }
}

}  // namespace
}  // namespace fusecheck
