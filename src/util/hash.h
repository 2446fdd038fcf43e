// Stable 128-bit hashing (XXH3) for fingerprints and cache keys.
#pragma once

#include <string>
#include <string_view>

namespace fusecheck {

class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  void update(std::string_view bytes);
  void update_u64(uint64_t v);
  std::string hex() const;  // 32 hex digits

 private:
  void* state_;
};

std::string hash_hex(std::string_view bytes);

}  // namespace fusecheck
