// Tokenizer::load on an arbitrary tokenizer.json (and, after a "\n--\n" separator in the input, an
// arbitrary tokenizer_config.json); a tokenizer that loads is then used once.
#include <cstdint>

#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

using namespace fusecheck;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = fuzz::scratch().path();
  auto [tok_json, cfg_json] = fuzz::split(fuzz::as_view(data, size), "\n--\n");
  fuzz::write_bytes(dir + "/tokenizer.json", tok_json);
  std::string cfg = dir + "/tokenizer_config.json";
  if (cfg_json.empty())
    ::unlink(cfg.c_str());
  else
    fuzz::write_bytes(cfg, cfg_json);
  auto t = Tokenizer::load(dir);
  if (!t.ok()) return 0;
  auto ids = t->encode("Hello world! 123 \xe4\xbd\xa0\xe5\xa5\xbd <|im_end|>");
  (void)t->decode(ids);
  (void)t->vocab_size();
  return 0;
}
