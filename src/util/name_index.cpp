#include "util/name_index.h"

#include <xxhash.h>

#include <bit>
#include <cstring>

namespace fusecheck {

uint64_t NameIndex::hash(std::string_view name) {
  return XXH3_64bits(name.data(), name.size());
}

size_t NameIndex::capacity_for(size_t n) {
  return std::bit_ceil(std::max<size_t>(16, n + n / 3 + 1));  // load factor at most 3/4
}

NameIndex::NameIndex(size_t expected) : slots_(capacity_for(expected)) {}

uint32_t NameIndex::insert(std::string_view name, uint64_t h, uint32_t id) {
  if (4 * (size_ + 1) > 3 * slots_.size()) grow();
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (s.id == kAbsent) {
      s = {h, name.data(), uint32_t(name.size()), id};
      ++size_;
      return kAbsent;
    }
    if (s.hash == h && s.size == name.size() && std::memcmp(s.data, name.data(), s.size) == 0)
      return s.id;
  }
}

uint32_t NameIndex::find(std::string_view name, uint64_t h) const {
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.id == kAbsent) return kAbsent;
    if (s.hash == h && s.size == name.size() && std::memcmp(s.data, name.data(), s.size) == 0)
      return s.id;
  }
}

void NameIndex::grow() {
  std::vector<Slot> old(slots_.size() * 2);
  old.swap(slots_);
  const size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.id == kAbsent) continue;
    size_t i = s.hash & mask;
    while (slots_[i].id != kAbsent) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

}  // namespace fusecheck
