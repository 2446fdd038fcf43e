// The run-time overridable data files: architecture profiles (ArchRegistry::parse), kernel numerics
// profiles (NumericsRegistry::parse) and thresholds (apply_thresholds_json). The first byte picks
// the parser, the rest is the document.
#include <cstdint>

#include "arch/arch_profile.h"
#include "check/thresholds.h"
#include "fuzz_util.h"
#include "kernels/numerics_profile.h"

using namespace fusecheck;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view doc = fuzz::as_view(data + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      (void)ArchRegistry::parse(doc, "architectures.json");
      break;
    case 1:
      (void)NumericsRegistry::parse(doc, "kernels.json");
      break;
    default: {
      static const Thresholds base = [] {
        auto t = load_thresholds("");
        if (!t.ok()) __builtin_trap();
        return *t;
      }();
      (void)apply_thresholds_json(base, doc, "thresholds.json");
      break;
    }
  }
  return 0;
}
