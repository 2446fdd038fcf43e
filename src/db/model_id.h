// A checkpoint's Hugging Face name and revision, when its path says them: the HF cache layout
// .../models--ORG--NAME/snapshots/REVISION. Flags override (db add --name/--revision).
#pragma once

#include <string>

namespace fusecheck {

struct ModelIdentity {
  std::string name;      // "Qwen/Qwen3-0.6B", or ""
  std::string revision;  // the snapshot's commit hash, or ""
};

// Lexical: the path is not resolved (snapshot files are symlinks into blobs/, the folder is not).
ModelIdentity identity_from_path(const std::string& model_dir);

}  // namespace fusecheck
