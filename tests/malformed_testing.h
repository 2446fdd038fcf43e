// Shared by the test_malformed_*.cpp suites: a test-side safetensors writer that writes correct
// bytes by default with hooks to break exactly one thing, a minimal valid qwen3 model directory
// (single file or two shards), and the assertions for "one clear error line naming the file".
#pragma once

#include <sys/wait.h>

#include <algorithm>
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
#include "io/safetensors.h"
#include "testing.h"

namespace fusecheck::malformed {

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

inline Tamper with_header(std::function<std::string(std::string)> edit) {
  Tamper t;
  t.header = std::move(edit);
  return t;
}
inline Tamper with_header_len(uint64_t n) {
  Tamper t;
  t.header_len = n;
  return t;
}
inline Tamper with_file_size(size_t n) {
  Tamper t;
  t.file_size = n;
  return t;
}
inline Tamper with_append(std::string bytes) {
  Tamper t;
  t.append = std::move(bytes);
  return t;
}

inline std::string f32_bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

inline std::string le64(uint64_t v) {
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
inline std::string replace_once(std::string s, std::string_view from, std::string_view to) {
  size_t p = s.find(from);
  if (p == std::string::npos || s.find(from, p + 1) != std::string::npos)
    throw std::runtime_error("replace_once: need exactly one \"" + std::string(from) + "\"");
  return s.replace(p, from.size(), to);
}

// ---------------------------------------------------------------------------------------------
// A minimal valid qwen3 model directory: config.json and the norm tensors the qwen3 profile reads.

inline constexpr uint64_t kHidden = 8, kHeadDim = 4;

inline std::string layer_tensor(int layer, const char* what) {
  return "model.layers." + std::to_string(layer) + "." + what;
}
inline std::string k_norm(int layer) {
  return layer_tensor(layer, "self_attn.k_norm.weight");
}

inline json tiny_config(int layers) {
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

// kHeadDim q/k-norm gains: `first`, then `rest`.
inline std::vector<float> head_gains(float first, float rest = 1.0f) {
  std::vector<float> g(kHeadDim, rest);
  g[0] = first;
  return g;
}

// The norms of `first..last` layers (and the final norm when `final_norm`), F32 ones.
inline SafetensorsBuilder tiny_norms(int first, int last, bool final_norm) {
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

inline CheckOptions no_cache() {
  CheckOptions o;
  o.use_cache = false;
  return o;
}

inline Result<CheckResult> check(const std::string& dir) {
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

inline std::string shq(const std::string& s) {
  return "'" + s + "'";
}

// The CLI's contract for unreadable input: exit 3, nothing on stdout, one "fusecheck: error:" line.
inline void ExpectCliInputError(const std::string& dir, std::string_view what) {
  RunResult r = run_cli("check " + shq(dir) + " --no-cache");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(r.err.starts_with("fusecheck: error: ")) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_TRUE(r.err.ends_with("\n")) << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
}

// Runs a shell command line, capturing stdout and stderr (run_cli runs only the fusecheck binary).
inline RunResult run_command(const std::string& cmd) {
  TempDir io;
  int status = std::system((cmd + " >" + (io / "out") + " 2>" + (io / "err")).c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(io / "out");
  r.err = read_text(io / "err");
  return r;
}

inline bool has_finding(const CheckResult& r, const std::string& severity, std::string_view text) {
  for (const auto& f : r.score.findings)
    if (f.severity == severity && f.message.find(text) != std::string::npos) return true;
  return false;
}

}  // namespace fusecheck::malformed
