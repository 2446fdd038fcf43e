// A Hugging Face checkpoint directory: config.json plus one safetensors file or shards listed in
// model.safetensors.index.json. Opening reads only headers; tensors are read on demand.
// Symlinked files (the HF cache's snapshots/<rev>/* -> blobs/) are followed; index entries must be
// plain file names inside the directory.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "io/safetensors.h"
#include "util/name_index.h"
#include "util/result.h"

namespace fusecheck {

constexpr size_t kMaxConfigBytes = 16u << 20;  // config.json, index, profiles: small files
constexpr size_t kMaxIndexBytes = 64u << 20;

class ShardPool;  // parses shard headers on worker threads (checkpoint.cpp)

struct TensorRef {
  const SafetensorsFile* file = nullptr;
  const TensorInfo* info = nullptr;
};

class Checkpoint {
 public:
  // `threads`: how many threads parse the shard headers (sharded checkpoints only; 1 = this
  // thread). The result does not depend on it.
  static Result<Checkpoint> open(const std::string& dir, int threads = 1);

  const std::string& dir() const { return dir_; }
  const std::string& config_path() const { return config_path_; }
  const std::string& config_json() const { return config_json_; }
  const std::vector<SafetensorsFile>& files() const { return files_; }
  // nullptr if no shard holds `name`.
  const TensorRef* find(std::string_view name) const;
  size_t tensor_count() const { return refs_.size(); }

 private:
  Status open_shards(const std::vector<std::string>& names, int threads, ShardPool* early);
  Status index_tensors();
  static constexpr size_t kShardsPerThread = 8;  // fewer shards than this per thread: not worth one

  std::string dir_;
  std::string config_path_;
  std::string config_json_;
  std::vector<SafetensorsFile> files_;
  std::vector<TensorRef> refs_;  // every shard's tensors, in shard then header order
  // name -> position in refs_. Views the shards' TensorInfo names, which live as long as files_
  // (see SafetensorsFile), with the hashes their parse computed.
  NameIndex names_;
};

}  // namespace fusecheck
