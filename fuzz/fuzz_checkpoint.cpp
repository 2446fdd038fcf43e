// Checkpoint::open with an arbitrary model.safetensors.index.json beside two valid shards, a nested
// directory and a file outside the checkpoint: entries that escape the directory, name a missing
// shard or a non-file must be errors.
#include <sys/stat.h>

#include <cstdint>

#include "fuzz_util.h"
#include "io/checkpoint.h"

using namespace fusecheck;

namespace {
std::string shard(const std::string& name) {
  std::string header = R"({"__metadata__":{"format":"pt"},")" + name +
                       R"(":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + std::string(8, '\0');
}

const std::string& setup() {
  static const std::string dir = [] {
    auto& s = fuzz::scratch();
    std::string d = s / "ckpt";
    ::mkdir(d.c_str(), 0755);
    ::mkdir((d + "/sub").c_str(), 0755);
    fuzz::write_bytes(d + "/config.json",
                      R"({"model_type":"llama","architectures":["LlamaForCausalLM"]})");
    fuzz::write_bytes(d + "/a.safetensors", shard("x.weight"));
    fuzz::write_bytes(d + "/b.safetensors", shard("y.weight"));
    fuzz::write_bytes(d + "/sub/c.safetensors", shard("z.weight"));
    fuzz::write_bytes(s / "outside.safetensors", shard("w.weight"));
    return d;
  }();
  return dir;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = setup();
  fuzz::write_bytes(dir + "/model.safetensors.index.json", fuzz::as_view(data, size));
  auto ck = Checkpoint::open(dir);
  if (!ck.ok()) return 0;
  for (const auto& f : ck->files()) {
    // Every opened shard must be inside the checkpoint directory.
    if (f.path().find("outside") != std::string::npos) __builtin_trap();
    for (const auto& t : f.tensors())
      if (!ck->find(t.name)) __builtin_trap();
  }
  return 0;
}
