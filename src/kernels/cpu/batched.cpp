#include "kernels/cpu/batched.h"

#include <algorithm>
#include <cmath>

namespace fusecheck::cpu {

namespace {

// Rows whose sums of squares advance together: 8 independent double chains.
constexpr int64_t kRowGroup = 8;

template <ActType A>
inline float round_as(float x) {
  return round_one(A, x);
}

// Calls f.template operator()<A>() with the ActType fixed at compile time.
template <typename F>
void with_act(ActType t, F&& f) {
  switch (t) {
    case ActType::F32:
      return f.template operator()<ActType::F32>();
    case ActType::BF16:
      return f.template operator()<ActType::BF16>();
    case ActType::F16:
      return f.template operator()<ActType::F16>();
  }
}

template <ActType A>
void norm_row(float* out, const float* x, const float* gain, int64_t n, float inv) {
  for (int64_t i = 0; i < n; ++i) {
    const float y = round_as<A>(x[i] * inv);  // hidden_states.to(input_dtype)
    out[i] = round_as<A>(gain[i] * y);        // self.weight * hidden_states
  }
}

template <ActType A>
void rope_row(float* x, int64_t half, const float* cos, const float* sin) {
  for (int64_t i = 0; i < half; ++i) {  // cpu::rope_rotate_half's three roundings
    const float x1 = x[i], x2 = x[i + half];
    const float a1 = round_as<A>(x1 * cos[i]), b1 = round_as<A>(-x2 * sin[i]);
    const float a2 = round_as<A>(x2 * cos[i]), b2 = round_as<A>(x1 * sin[i]);
    x[i] = round_as<A>(a1 + b1);
    x[i + half] = round_as<A>(a2 + b2);
  }
}

}  // namespace

void inv_rms_rows(const float* x, int64_t rows, int64_t n, float eps, float* inv) {
  int64_t r = 0;
  for (; r + kRowGroup <= rows; r += kRowGroup) {
    const float* xr = x + r * n;
    double ss[kRowGroup] = {};
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < kRowGroup; ++k) {
        const float v = xr[k * n + i];
        ss[k] += static_cast<double>(v) * v;  // inv_rms's product and sum, in increasing i
      }
    for (int64_t k = 0; k < kRowGroup; ++k) inv[r + k] = inv_rms_from_sum(ss[k], n, eps);
  }
  for (; r < rows; ++r) inv[r] = inv_rms(x + r * n, n, eps);
}

void rmsnorm_rows(float* out, const float* x, const float* gain, int64_t rows, int64_t n, float eps,
                  ActType t) {
  with_act(t, [&]<ActType A>() {
    for (int64_t r0 = 0; r0 < rows; r0 += kRowGroup) {
      const int64_t nr = std::min(kRowGroup, rows - r0);
      float inv[kRowGroup];
      inv_rms_rows(x + r0 * n, nr, n, eps, inv);  // before any row of the group is written
      for (int64_t k = 0; k < nr; ++k)
        norm_row<A>(out + (r0 + k) * n, x + (r0 + k) * n, gain, n, inv[k]);
    }
  });
}

void qk_norm_rope_rows(float* x, int64_t T, int64_t n_heads, int64_t hd, const float* gain,
                       float eps, const float* cos, const float* sin, ActType t, float* cs) {
  const int64_t half = hd / 2;
  with_act(t, [&]<ActType A>() {
    if (gain) rmsnorm_rows(x, x, gain, T * n_heads, hd, eps, A);  // rows are heads
    for (int64_t tok = 0; tok < T; ++tok) {
      for (int64_t i = 0; i < half; ++i)  // transformers casts cos/sin to the model dtype
        cs[i] = round_as<A>(cos[tok * half + i]), cs[half + i] = round_as<A>(sin[tok * half + i]);
      for (int64_t h = 0; h < n_heads; ++h)
        rope_row<A>(x + (tok * n_heads + h) * hd, half, cs, cs + half);
    }
  });
}

void add_rows(float* out, const float* a, const float* b, int64_t n, ActType t) {
  with_act(t, [&]<ActType A>() {
    for (int64_t i = 0; i < n; ++i) out[i] = round_as<A>(a[i] + b[i]);
  });
}

void silu_mul_rows(float* out, const float* gate, const float* up, int64_t n, ActType t) {
  // The library exp calls run first, into a block of 256, so the rest of the arithmetic (the same
  // per element: g / (1 + e), round, * up, round) runs as vectors; inputs are read before the
  // outputs of the same block are written (out may alias gate or up).
  constexpr int64_t kBlock = 256;
  with_act(t, [&]<ActType A>() {
    float e[kBlock];
    for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
      const int64_t nb = std::min(kBlock, n - i0);
      for (int64_t i = 0; i < nb; ++i) e[i] = std::exp(-gate[i0 + i]);
      for (int64_t i = 0; i < nb; ++i) {
        const float g = gate[i0 + i];
        const float s = round_as<A>(g / (1.0f + e[i]));  // act_fn(gate_proj(x))
        out[i0 + i] = round_as<A>(s * up[i0 + i]);       // * up_proj(x)
      }
    }
  });
}

}  // namespace fusecheck::cpu
