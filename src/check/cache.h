// On-disk cache of check results, keyed by everything the result depends on: checker version,
// thresholds, kernel profile, architecture profile and the checkpoint fingerprint. Entries are
// written atomically and carry their full key and a checksum; anything that does not verify
// (corrupt, truncated, another key that hashed alike) is ignored and rewritten. A cache that cannot
// be read or written never fails the check: the caller gets a note instead.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "util/result.h"

namespace fusecheck {

class ResultCache {
 public:
  // dir "" = $XDG_CACHE_HOME/fusecheck, else $HOME/.cache/fusecheck.
  explicit ResultCache(std::string dir);
  const std::string& dir() const { return dir_; }

  // The stored value for `key`, or nullopt (miss, unreadable or corrupt entry).
  std::optional<nlohmann::json> load(const nlohmann::json& key) const;
  // Stores atomically; an error explains why (read-only, full disk, ...).
  Status store(const nlohmann::json& key, const nlohmann::json& value) const;

  std::string entry_path(const nlohmann::json& key) const;

 private:
  std::string dir_;
};

std::string default_cache_dir();

}  // namespace fusecheck
