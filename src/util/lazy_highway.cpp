// Highway's shared library, loaded on first use instead of at program start.
//
// Why: libhwy.so.1 (Debian's Highway 1.0.3) runs a static initialiser when it is loaded that
// calibrates its benchmark timer (hwy::platform::TimerResolution, tens of thousands of timer
// reads): about 3 ms of every process, while `fusecheck check` needs ~2 ms in all and never runs
// a SIMD kernel. So no target links libhwy; the Highway functions our kernels call (through
// HWY_DYNAMIC_DISPATCH and the aligned allocator) are defined here, and each forwards to the real
// one, which dlopen finds on the first call. Only the engine's first SIMD dispatch pays the load.
//
// The signatures come from Highway's own headers, so a changed declaration fails to compile. A
// Highway function used elsewhere and not listed here is an undefined reference at link time: add
// a forwarder below. This file is compiled with hidden visibility (CMakeLists.txt), so the
// forwarders bind only our own calls and never interpose on libhwy's internal ones.
#include <dlfcn.h>
#include <hwy/aligned_allocator.h>
#include <hwy/targets.h>

#include <cstdio>
#include <cstdlib>

namespace {

constexpr const char* kHighwaySoname = "libhwy.so.1";

// The process-wide handle: one library per process, like the Highway state it stands for.
void* highway() {
  static void* handle = [] {
    void* h = ::dlopen(kHighwaySoname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      // A broken installation, not bad input: the engine cannot run without its SIMD library.
      std::fprintf(stderr,
                   "fusecheck: error: cannot load Highway (%s), which the CPU kernels need: %s "
                   "(install the Debian package libhwy1)\n",
                   kHighwaySoname, ::dlerror());
      std::abort();
    }
    return h;
  }();
  return handle;
}

template <typename Fn>
Fn resolve(const char* mangled) {
  void* p = ::dlsym(highway(), mangled);
  if (!p) {
    std::fprintf(stderr, "fusecheck: error: %s lacks %s (Highway 1.0 expected)\n", kHighwaySoname,
                 mangled);
    std::abort();
  }
  return reinterpret_cast<Fn>(p);
}

}  // namespace

// Each forwarder resolves its target once (a thread-safe function-local static).
#define FC_HWY_FORWARD(ret, name, mangled, params, args)      \
  ret name params {                                           \
    static const auto real = resolve<ret(*) params>(mangled); \
    return real args;                                         \
  }

namespace hwy {

FC_HWY_FORWARD(ChosenTarget&, GetChosenTarget, "_ZN3hwy15GetChosenTargetEv", (), ())
FC_HWY_FORWARD(int64_t, SupportedTargets, "_ZN3hwy16SupportedTargetsEv", (), ())
FC_HWY_FORWARD(void, DisableTargets, "_ZN3hwy14DisableTargetsEl", (int64_t disabled), (disabled))
FC_HWY_FORWARD(void, SetSupportedTargetsForTest, "_ZN3hwy26SetSupportedTargetsForTestEl",
               (int64_t targets), (targets))
FC_HWY_FORWARD(void*, AllocateAlignedBytes, "_ZN3hwy20AllocateAlignedBytesEmPFPvS0_mES0_",
               (size_t bytes, AllocPtr alloc, void* opaque), (bytes, alloc, opaque))
FC_HWY_FORWARD(void, FreeAlignedBytes, "_ZN3hwy16FreeAlignedBytesEPKvPFvPvS2_ES2_",
               (const void* p, FreePtr free, void* opaque), (p, free, opaque))

}  // namespace hwy
