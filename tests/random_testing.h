// Seeded random inputs for the kernel tests, rounded to the activation type they feed.
#pragma once

#include <random>
#include <vector>

#include "kernels/types.h"

namespace fusecheck::testing {

// n normal values of standard deviation `scale`, each rounded to `t` (exact in that type).
inline std::vector<float> randn(size_t n, std::mt19937& rng, float scale = 1.0f,
                                ActType t = ActType::F32) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = round_one(t, d(rng));
  return v;
}

}  // namespace fusecheck::testing
