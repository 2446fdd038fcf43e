// Throwaway-sized experiment behind docs/PERFORMANCE.md's "decode: what was tried": bf16 GEMV
// loop variants over a 512 MiB matrix (AVX-512 intrinsics, not the engine's kernel): one row at a
// time (the engine's order), with software prefetch 512 B / 2 KiB ahead, and 2 or 4 rows
// interleaved. Not built by CMake (x86 AVX-512 only):
//   g++ -O2 -march=native -std=c++17 bench/experiments/gemv_variants.cpp -o /tmp/gemv -lpthread
//   /tmp/gemv 1024
#include <immintrin.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>
// bf16 W [rows, cols], fp32 x [cols]; variants of the 32-lane contract.
static inline __m512 ld(const uint16_t* p) {
  return _mm512_castsi512_ps(
      _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
}
template <int R, int PF>
void gemv(const uint16_t* W, const float* x, float* out, long r0, long r1, long cols) {
  for (long r = r0; r < r1; r += R) {
    __m512 a[R][2];
    for (int i = 0; i < R; ++i) a[i][0] = a[i][1] = _mm512_setzero_ps();
    const uint16_t* w = W + r * cols;
    for (long i = 0; i < cols; i += 32) {
      if (PF)
        for (int q = 0; q < R; ++q) _mm_prefetch((const char*)(w + q * cols + i) + PF, _MM_HINT_T0);
      __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
      for (int q = 0; q < R; ++q) {
        a[q][0] = _mm512_fmadd_ps(x0, ld(w + q * cols + i), a[q][0]);
        a[q][1] = _mm512_fmadd_ps(x1, ld(w + q * cols + i + 16), a[q][1]);
      }
    }
    for (int q = 0; q < R; ++q) out[r + q] = _mm512_reduce_add_ps(_mm512_add_ps(a[q][0], a[q][1]));
  }
}
using Fn = void (*)(const uint16_t*, const float*, float*, long, long, long);
int main(int argc, char** argv) {
  long cols = argc > 1 ? atol(argv[1]) : 1024, rows = (long(1) << 29) / 2 / cols;  // 512 MiB
  std::vector<uint16_t> W(rows * cols, 0x3f80);
  std::vector<float> x(cols, 1.0f), out(rows);
  struct V {
    const char* n;
    Fn f;
  } vs[] = {{"1row", gemv<1, 0>}, {"1row+pf512", gemv<1, 512>}, {"1row+pf2k", gemv<1, 2048>},
            {"2row", gemv<2, 0>}, {"4row", gemv<4, 0>},         {"2row+pf1k", gemv<2, 1024>}};
  for (int th : {1, 2})
    for (auto& v : vs) {
      double best = 1e9;
      for (int rep = 0; rep < 5; ++rep) {
        auto t0 = std::chrono::steady_clock::now();
        std::vector<std::thread> ts;
        for (int t = 0; t < th; ++t)
          ts.emplace_back([&, t] {
            v.f(W.data(), x.data(), out.data(), rows * t / th, rows * (t + 1) / th, cols);
          });
        for (auto& t : ts) t.join();
        best = std::min(
            best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      printf("threads %d %-12s %.1f GB/s\n", th, v.n, rows * cols * 2 / best / 1e9);
    }
}
