// config.json -> parse_model_config on arbitrary bytes.
#include <cstdint>

#include "fuzz_util.h"
#include "io/model_config.h"

using namespace fusecheck;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto c = parse_model_config(std::string(fuzz::as_view(data, size)), "config.json");
  (void)c;
  return 0;
}
