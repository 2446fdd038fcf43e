// ResultCache::load on an arbitrary cache entry: anything that does not verify is a miss; an entry
// that loads must be exactly the stored key's value.
#include <cstdint>

#include "check/cache.h"
#include "fuzz_util.h"

using namespace fusecheck;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ResultCache cache(fuzz::scratch() / "cache");
  static const nlohmann::json key = {{"v", 1}, {"model", "m"}};
  static const bool stored = cache.store(key, {{"verdict", "COMPATIBLE"}}).ok();
  if (!stored) __builtin_trap();
  fuzz::write_bytes(cache.entry_path(key), fuzz::as_view(data, size));
  auto v = cache.load(key);
  (void)v;
  return 0;
}
