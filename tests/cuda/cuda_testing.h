// Helpers of the CUDA op tests: device buffers, the skip when no GPU is present, NMSE and
// bit-mismatch counts against the CPU twin, random inputs rounded like standard-path activations.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/ops.h"
#include "kernels/cuda/cuda_ops.h"
#include "util/half.h"

namespace fusecheck::cudatest {

namespace cu = fusecheck::cuda;
using cpu::ActType;

#define CU_OK(expr) ASSERT_EQ((expr), 0) << cu::error_string(expr) << " in " #expr

// A device buffer of n elements of T, freed on destruction.
template <typename T>
class Dev {
 public:
  explicit Dev(size_t n) : n_(n) {
    if (cu::malloc_device(reinterpret_cast<void**>(&p_), std::max<size_t>(n, 1) * sizeof(T)))
      p_ = nullptr;
  }
  explicit Dev(const std::vector<T>& h) : Dev(h.size()) { put(h); }
  ~Dev() { cu::free_device(p_); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  T* get() const { return p_; }
  void put(const std::vector<T>& h) {
    EXPECT_EQ(cu::copy_to_device(p_, h.data(), n_ * sizeof(T)), 0);
  }
  std::vector<T> host() const {
    std::vector<T> h(n_);
    EXPECT_EQ(cu::synchronize(), 0);
    EXPECT_EQ(cu::copy_to_host(h.data(), p_, n_ * sizeof(T)), 0);
    return h;
  }

 private:
  T* p_ = nullptr;
  size_t n_;
};

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cu::device_count() == 0)
      GTEST_SKIP() << "no CUDA GPU present (cudaGetDeviceCount failed or returned 0); skipping";
  }
};

struct Cmp {
  double nmse = 0;
  size_t mismatches = 0;  // elements not bit-identical
  size_t n = 0;
  double max_rel = 0;
};
// signed_zero_equal: count -0.0 against +0.0 as a match (formats that cannot store -0).
inline Cmp compare(const std::vector<float>& got, const std::vector<float>& want,
                   bool signed_zero_equal = false) {
  Cmp c;
  c.n = want.size();
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = double(got[i]) - double(want[i]);
    num += d * d;
    den += double(want[i]) * want[i];
    const bool zeros = signed_zero_equal && got[i] == 0.0f && want[i] == 0.0f;
    if (!zeros && std::memcmp(&got[i], &want[i], 4) != 0) ++c.mismatches;
    if (want[i] != 0) c.max_rel = std::max(c.max_rel, std::fabs(d / want[i]));
    if (std::isnan(got[i]) != std::isnan(want[i])) c.nmse = INFINITY;
  }
  if (c.nmse == 0) c.nmse = den > 0 ? num / den : num;
  return c;
}
inline void print(const char* op, const std::string& shape, const Cmp& c) {
  std::printf("[nmse] %-16s %-44s nmse=%.3e mismatches=%zu/%zu max_rel=%.2e\n", op, shape.c_str(),
              c.nmse, c.mismatches, c.n, c.max_rel);
}

inline const char* act_name(ActType t) {
  return t == ActType::BF16 ? "bf16" : t == ActType::F16 ? "f16" : "f32";
}
inline cu::Act to_cu(ActType t) {
  return static_cast<cu::Act>(t);
}
static_assert(int(cu::Act::BF16) == int(ActType::BF16) && int(cu::Act::F16) == int(ActType::F16));

// Random activations already rounded to `t` (as every standard-path input is).
inline std::vector<float> randv(size_t n, std::mt19937& g, ActType t, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = cpu::round_one(t, d(g));
  return v;
}

// A weight matrix in host bytes of `dt` plus its device copy.
struct HostWeight {
  DType dt;
  std::vector<uint8_t> bytes;
  int64_t rows, cols;
};
inline HostWeight rand_weight(DType dt, int64_t rows, int64_t cols, std::mt19937& g, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  HostWeight w{dt, std::vector<uint8_t>(size_t(rows * cols) * dtype_size(dt) + 16), rows, cols};
  for (int64_t i = 0; i < rows * cols; ++i) {
    const float x = d(g);
    if (dt == DType::BF16) {
      const uint16_t b = f32_to_bf16(x);
      std::memcpy(&w.bytes[size_t(i) * 2], &b, 2);
    } else if (dt == DType::F16) {
      const uint16_t b = f32_to_f16(x);
      std::memcpy(&w.bytes[size_t(i) * 2], &b, 2);
    } else {
      std::memcpy(&w.bytes[size_t(i) * 4], &x, 4);
    }
  }
  return w;
}
inline cu::WType wtype(DType d) {
  return d == DType::BF16 ? cu::WType::BF16 : d == DType::F16 ? cu::WType::F16 : cu::WType::F32;
}
inline cpu::Weight cpu_w(const HostWeight& w) {
  return cpu::Weight{w.dt, w.bytes.data(), w.rows, w.cols};
}

inline std::string shape_str(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline std::string shape_str(const char* fmt, ...) {
  char buf[160];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

}  // namespace fusecheck::cudatest
