// SafetensorsFile::open on arbitrary bytes: header length, JSON header, layout validation; then
// every accessor a caller may use on a file that opened (read_bytes, read_f32, mapped).
#include <cstdint>

#include "fuzz_util.h"
#include "io/safetensors.h"

using namespace fusecheck;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = fuzz::scratch() / "model.safetensors";
  fuzz::write_bytes(path, fuzz::as_view(data, size));
  static HeaderParser parser;  // reused across inputs, as Checkpoint reuses one for its shards
  auto f = SafetensorsFile::open(path, &parser);
  if (!f.ok()) return 0;
  for (const TensorInfo& t : f->tensors()) {
    if (t.nbytes > (1u << 20)) continue;  // the layout was validated against the file size already
    auto raw = f->read_bytes(t);
    if (raw.ok() && raw->size() != t.nbytes) __builtin_trap();
    if (dtype_is_float_supported(t.dtype)) (void)f->read_f32(t);
    auto m = f->mapped(t);
    if (m.ok() && m->size() != t.nbytes) __builtin_trap();
    (void)f->find(t.name);
  }
  return 0;
}
