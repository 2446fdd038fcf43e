// An index from names to dense ids (0..n-1): open addressing over one flat slot array, each slot
// holding the name's 64-bit XXH3 hash, so a probe compares bytes only on a full-hash match. A 235B
// checkpoint names ~37,000 tensors; a node-based map spent most of its lookups in cache misses
// between buckets, nodes and key bytes. The names are views: their bytes must outlive the index.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace fusecheck {

class NameIndex {
 public:
  static constexpr uint32_t kAbsent = UINT32_MAX;

  static uint64_t hash(std::string_view name);

  // Room for `expected` names without growing.
  explicit NameIndex(size_t expected = 0);

  // Adds `name` (whose hash is `h`) as `id` and returns kAbsent, or returns the id of the equal
  // name already present (and adds nothing).
  uint32_t insert(std::string_view name, uint64_t h, uint32_t id);
  uint32_t find(std::string_view name, uint64_t h) const;
  uint32_t find(std::string_view name) const { return find(name, hash(name)); }
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t hash = 0;
    const char* data = nullptr;
    uint32_t size = 0;
    uint32_t id = kAbsent;  // kAbsent: empty
  };
  static size_t capacity_for(size_t n);
  void grow();

  std::vector<Slot> slots_;  // [capacity, a power of two]; at most 3/4 full
  size_t size_ = 0;
};

}  // namespace fusecheck
