// read_generation_defaults: generation_config.json and config.json (split at "\n--\n").
#include <cstdint>

#include "fuzz_util.h"
#include "model/generate.h"

using namespace fusecheck;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = fuzz::scratch().path();
  auto [gen, cfg] = fuzz::split(fuzz::as_view(data, size), "\n--\n");
  fuzz::write_bytes(dir + "/generation_config.json", gen);
  fuzz::write_bytes(dir + "/config.json", cfg);
  (void)read_generation_defaults(dir);
  return 0;
}
