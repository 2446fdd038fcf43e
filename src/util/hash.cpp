#include "util/hash.h"

#include <fmt/format.h>
#include <xxhash.h>

namespace fusecheck {

Hasher::Hasher() : state_(XXH3_createState()) {
  XXH3_128bits_reset(static_cast<XXH3_state_t*>(state_));
}
Hasher::~Hasher() {
  XXH3_freeState(static_cast<XXH3_state_t*>(state_));
}

void Hasher::update(std::string_view b) {
  // Length-prefix every field so ("ab","c") and ("a","bc") differ.
  update_u64(b.size());
  XXH3_128bits_update(static_cast<XXH3_state_t*>(state_), b.data(), b.size());
}

void Hasher::update_u64(uint64_t v) {
  unsigned char le[8];
  for (int i = 0; i < 8; ++i) le[i] = (unsigned char)(v >> (8 * i));
  XXH3_128bits_update(static_cast<XXH3_state_t*>(state_), le, 8);
}

std::string Hasher::hex() const {
  XXH128_hash_t h = XXH3_128bits_digest(static_cast<XXH3_state_t*>(state_));
  return fmt::format("{:016x}{:016x}", h.high64, h.low64);
}

std::string hash_hex(std::string_view bytes) {
  Hasher h;
  h.update(bytes);
  return h.hex();
}

}  // namespace fusecheck
