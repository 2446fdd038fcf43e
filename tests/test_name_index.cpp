// NameIndex against std::unordered_map (the oracle): random names with repeats, growth from the
// smallest table, names that differ only in their last byte or length, and absent names.
#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <string>
#include <unordered_map>

#include "util/name_index.h"

namespace fusecheck {
namespace {

TEST(NameIndex, AgreesWithUnorderedMapThroughGrowth) {
  std::mt19937 rng(7);
  std::deque<std::string> names;  // stable storage: the index holds views
  std::unordered_map<std::string, uint32_t> oracle;
  NameIndex index;  // the smallest table: it grows many times below
  for (int i = 0; i < 20000; ++i) {
    std::string n = "model.layers." + std::to_string(rng() % 5000) + ".w";
    if (i % 7 == 0) n.push_back(char('a' + rng() % 3));  // same prefix, other length
    names.push_back(n);
    const uint32_t id = uint32_t(i);
    const uint32_t got = index.insert(names.back(), NameIndex::hash(names.back()), id);
    auto [it, added] = oracle.emplace(n, id);
    EXPECT_EQ(got, added ? NameIndex::kAbsent : it->second) << n;
  }
  EXPECT_EQ(index.size(), oracle.size());
  for (const auto& [n, id] : oracle) EXPECT_EQ(index.find(n), id) << n;
  for (int i = 0; i < 2000; ++i) {
    const std::string absent = "model.layers." + std::to_string(5000 + i) + ".w";
    EXPECT_EQ(index.find(absent), NameIndex::kAbsent) << absent;
  }
  EXPECT_EQ(index.find(""), NameIndex::kAbsent);
}

TEST(NameIndex, EqualHashesStillCompareBytes) {
  // Two names inserted under the same (forced) hash: both are kept and found by their bytes.
  const std::string a = "q_norm", b = "k_norm";
  NameIndex index(2);
  EXPECT_EQ(index.insert(a, 42, 0), NameIndex::kAbsent);
  EXPECT_EQ(index.insert(b, 42, 1), NameIndex::kAbsent);
  EXPECT_EQ(index.insert(b, 42, 2), 1u);
  EXPECT_EQ(index.find(a, 42), 0u);
  EXPECT_EQ(index.find(b, 42), 1u);
  EXPECT_EQ(index.find("v_norm", 42), NameIndex::kAbsent);
}

}  // namespace
}  // namespace fusecheck
