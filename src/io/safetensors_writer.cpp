#include "io/safetensors_writer.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "util/atomic_file.h"

namespace fusecheck {

Status write_safetensors_f32(const std::string& path, const std::vector<F32Tensor>& tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}, {"producer", "fusecheck"}};
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    uint64_t numel = 1;
    for (uint64_t d : t.shape) numel *= d;
    if (numel != t.data.size())
      return make_error("{}: tensor {} has {} values but shape says {}", path, t.name,
                        t.data.size(), numel);
    header[t.name] = {
        {"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + 4 * numel}}};
    offset += 4 * numel;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(uint64_t(h.size()) >> (8 * i));
  out += h;
  out.reserve(out.size() + offset);
  for (const auto& t : tensors)  // little-endian fp32, as x86-64 and ARM store it
    out.append(reinterpret_cast<const char*>(t.data.data()), t.data.size() * 4);
  return write_file_atomic(path, out);
}

}  // namespace fusecheck
