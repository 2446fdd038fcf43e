#include "check/cache.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "util/atomic_file.h"
#include "util/hash.h"

namespace fusecheck {

using json = nlohmann::json;

namespace {
constexpr size_t kMaxEntryBytes = 64u << 20;

Status make_dirs(const std::string& dir) {
  // mkdir -p, tolerating a concurrent creator.
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string part = dir.substr(0, pos);
    if (::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST)
      return make_error("{}: cannot create cache directory: {}", part, strerror(errno));
  }
  return ok_status();
}
}  // namespace

std::string default_cache_dir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg && *xdg) return std::string(xdg) + "/fusecheck";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.cache/fusecheck";
}

ResultCache::ResultCache(std::string dir)
    : dir_(dir.empty() ? default_cache_dir() : std::move(dir)) {}

std::string ResultCache::entry_path(const json& key) const {
  return dir_ + "/" + hash_hex(key.dump()) + ".json";
}

std::optional<json> ResultCache::load(const json& key) const {
  auto text = read_small_file(entry_path(key), kMaxEntryBytes);
  if (!text) return std::nullopt;
  json entry = json::parse(*text, nullptr, false);
  if (entry.is_discarded() || !entry.is_object()) return std::nullopt;
  auto k = entry.find("key");
  auto v = entry.find("value");
  auto c = entry.find("checksum");
  if (k == entry.end() || v == entry.end() || c == entry.end() || !c->is_string())
    return std::nullopt;
  // The full key must match (a hash collision or a stale format is a miss), and the value must be
  // byte-for-byte what was stored.
  if (*k != key || c->get<std::string>() != hash_hex(v->dump())) return std::nullopt;
  return *v;
}

Status ResultCache::store(const json& key, const json& value) const {
  FC_TRY(make_dirs(dir_));
  json entry = {{"key", key}, {"value", value}, {"checksum", hash_hex(value.dump())}};
  return write_file_atomic(entry_path(key), entry.dump());
}

}  // namespace fusecheck
