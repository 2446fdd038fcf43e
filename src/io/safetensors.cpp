#include "io/safetensors.h"

#include <fcntl.h>
#include <simdjson.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "util/half.h"

namespace fusecheck {

namespace {

struct DTypeEntry {
  DType type;
  std::string_view name;
  size_t size;
};
constexpr std::array<DTypeEntry, 12> kDTypes{{
    {DType::F32, "F32", 4},
    {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2},
    {DType::F64, "F64", 8},
    {DType::I64, "I64", 8},
    {DType::I32, "I32", 4},
    {DType::I16, "I16", 2},
    {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
    {DType::F8_E4M3, "F8_E4M3", 1},
    {DType::F8_E5M2, "F8_E5M2", 1},
}};

// Reads exactly n bytes at off, retrying short reads; false if the file ends first.
bool pread_all(int fd, void* buf, size_t n, uint64_t off) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, off_t(off));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= size_t(r);
    off += uint64_t(r);
  }
  return true;
}

}  // namespace

std::string_view dtype_name(DType t) {
  return kDTypes[size_t(t)].name;
}
size_t dtype_size(DType t) {
  return kDTypes[size_t(t)].size;
}
bool dtype_is_float_supported(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

Result<DType> parse_dtype(std::string_view name) {
  for (const auto& e : kDTypes)
    if (e.name == name) return e.type;
  return make_error(
      "unknown dtype \"{}\" (expected one of F32, F16, BF16, F64, I64, I32, I16, I8, "
      "U8, BOOL, F8_E4M3, F8_E5M2)",
      printable(name));
}

void convert_to_f32(DType dtype, const void* src, size_t n, float* dst) {
  const auto* b = static_cast<const unsigned char*>(src);
  switch (dtype) {
    case DType::F32:
      if (n) std::memcpy(dst, b, 4 * n);  // n == 0: dst may be null (an empty vector's data())
      return;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, b + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, b + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      return;
    default:
      assert(false && "convert_to_f32: unsupported dtype");
      return;
  }
}

struct HeaderParser::Impl {
  simdjson::dom::parser parser;
};
HeaderParser::HeaderParser() : impl_(std::make_unique<Impl>()) {}
HeaderParser::~HeaderParser() = default;

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept {
  *this = std::move(o);
}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    // Release our file, not our members: they are assigned below (calling the destructor here
    // ended the members' lifetimes and double-freed the old path string).
    if (map_) ::munmap(map_, file_size_);
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(o.path_);
    fd_ = std::exchange(o.fd_, -1);
    file_size_ = o.file_size_;
    header_ = std::move(o.header_);
    header_size_ = std::exchange(o.header_size_, 0);
    tensors_ = std::move(o.tensors_);
    names_ = std::move(o.names_);
    dims_ = std::move(o.dims_);
    index_ = std::move(o.index_);
    metadata_ = std::move(o.metadata_);
    map_ = std::exchange(o.map_, nullptr);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, file_size_);
  if (fd_ >= 0) ::close(fd_);
  map_ = nullptr;
  fd_ = -1;
}

Result<SafetensorsFile> SafetensorsFile::open(const std::string& path, HeaderParser* parser) {
  SafetensorsFile f;
  f.path_ = path;
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer; fstat rejects it.
  f.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (f.fd_ < 0) return make_error("{}: cannot open: {}", path, strerror(errno));
  struct stat st;
  if (fstat(f.fd_, &st) != 0) return make_error("{}: cannot stat: {}", path, strerror(errno));
  if (S_ISDIR(st.st_mode))
    return make_error("{}: is a directory, expected a .safetensors file", path);
  if (!S_ISREG(st.st_mode)) return make_error("{}: not a regular file", path);
  f.file_size_ = uint64_t(st.st_size);
  if (f.file_size_ < 8)
    return make_error(
        "{}: truncated: {} bytes, a safetensors file starts with an 8-byte header "
        "length",
        path, f.file_size_);
  unsigned char len_bytes[8];
  if (!pread_all(f.fd_, len_bytes, 8, 0))
    return make_error("{}: cannot read the header length", path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  if (n > kMaxHeaderBytes)
    return make_error(
        "{}: header length {} exceeds the {}-byte limit; the file is corrupt or not "
        "safetensors",
        path, n, kMaxHeaderBytes);
  if (n > f.file_size_ - 8)
    return make_error(
        "{}: header length {} runs past the end of the {}-byte file (truncated "
        "download?)",
        path, n, f.file_size_);
  if (n < 2) return make_error("{}: header length {} is too small for a JSON object", path, n);
  // Parsed in place (see parse_header): only the padding is zero-filled, the header is read
  // straight into the buffer.
  f.header_ = std::make_unique_for_overwrite<char[]>(n + simdjson::SIMDJSON_PADDING);
  std::memset(f.header_.get() + n, 0, simdjson::SIMDJSON_PADDING);
  f.header_size_ = n;
  if (!pread_all(f.fd_, f.header_.get(), n, 8))
    return make_error("{}: file ended while reading the {}-byte header", path, n);
  HeaderParser local;
  FC_TRY(f.parse_header(f.header_json(), f.file_size_ - 8 - n, parser ? *parser : local));
  return f;
}

namespace {

// One header entry's fields, read and type-checked but not yet checked against each other.
struct RawEntry {
  bool have_dtype = false, have_shape = false, have_offsets = false;
  uint64_t begin = 0, end = 0;
};

// Where parse_header puts the tensors' names and shapes: blocks sized by a first pass over the
// header (header_storage_needs), filled front to back.
struct EntryStorage {
  char* names;
  size_t names_left;
  uint64_t* dims;
  size_t dims_left;
};

constexpr size_t kMaxRank = 16;

// The bytes of every key but "__metadata__", and the entries of every "shape" array (at most
// kMaxRank each: a longer one is refused when parsed).
void header_storage_needs(simdjson::dom::object root, size_t& name_bytes, size_t& dims) {
  name_bytes = dims = 0;
  for (auto [key, val] : root) {
    if (key == "__metadata__") continue;
    name_bytes += key.size();
    simdjson::dom::object obj;
    if (val.get_object().get(obj)) continue;
    for (auto [tk, tv] : obj) {
      simdjson::dom::array arr;
      if (tk == "shape" && !tv.get_array().get(arr)) dims += std::min(arr.size(), kMaxRank);
    }
  }
}

// "__metadata__": an object of string -> string.
Status parse_metadata(const std::string& path, simdjson::dom::element val,
                      std::unordered_map<std::string, std::string>& out) {
  simdjson::dom::object meta;
  if (val.get_object().get(meta))
    return make_error("{}: \"__metadata__\" must be an object of strings", path);
  for (auto [mk, mv] : meta) {
    std::string_view s;
    if (mv.get_string().get(s))
      return make_error("{}: \"__metadata__\" must map strings to strings", path);
    out[std::string(mk)] = std::string(s);
  }
  return ok_status();
}

Status parse_shape(const std::string& path, std::string_view key, simdjson::dom::element v,
                   EntryStorage& store, std::span<const uint64_t>& shape) {
  simdjson::dom::array arr;
  if (v.get_array().get(arr))
    return make_error("{}: tensor \"{}\": shape must be an array", path, printable(key));
  if (arr.size() > kMaxRank)
    return make_error("{}: tensor \"{}\": more than {} dimensions", path, printable(key), kMaxRank);
  if (arr.size() > store.dims_left)  // cannot happen: header_storage_needs counted every shape
    return make_error("{}: tensor \"{}\": shape storage exhausted", path, printable(key));
  uint64_t* out = store.dims;
  size_t rank = 0;
  for (auto d : arr) {
    if (d.get_uint64().get(out[rank]))
      return make_error("{}: tensor \"{}\": shape entries must be non-negative integers", path,
                        printable(key));
    ++rank;
  }
  store.dims += rank;
  store.dims_left -= rank;
  shape = {out, rank};
  return ok_status();
}

// The fields of one tensor entry: dtype, shape, data_offsets, each at most once. Unknown fields
// are ignored, as the reference implementation does.
Status parse_fields(const std::string& path, std::string_view key, simdjson::dom::object obj,
                    EntryStorage& store, TensorInfo& t, RawEntry& e) {
  for (auto [tk, tv] : obj) {
    if ((tk == "dtype" && e.have_dtype) || (tk == "shape" && e.have_shape) ||
        (tk == "data_offsets" && e.have_offsets))
      return make_error("{}: tensor \"{}\": field \"{}\" given twice", path, printable(key),
                        printable(tk));
    if (tk == "dtype") {
      std::string_view ds;
      if (tv.get_string().get(ds))
        return make_error("{}: tensor \"{}\": dtype must be a string", path, printable(key));
      auto dt = parse_dtype(ds);
      if (!dt) return make_error("{}: tensor \"{}\": {}", path, printable(key), dt.error().message);
      t.dtype = *dt;
      e.have_dtype = true;
    } else if (tk == "shape") {
      FC_TRY(parse_shape(path, key, tv, store, t.shape));
      e.have_shape = true;
    } else if (tk == "data_offsets") {
      simdjson::dom::array arr;
      if (tv.get_array().get(arr) || arr.size() != 2 || arr.at(0).get_uint64().get(e.begin) ||
          arr.at(1).get_uint64().get(e.end))
        return make_error(
            "{}: tensor \"{}\": data_offsets must be [begin, end], two non-negative integers", path,
            printable(key));
      e.have_offsets = true;
    }
  }
  return ok_status();
}

// Completeness and arithmetic: every field present, offsets forward, numel * dtype size (no
// overflow) equal to the byte range. Sets numel, nbytes and the (data-relative) offset.
Status check_sizes(const std::string& path, const RawEntry& e, TensorInfo& t) {
  if (!e.have_dtype || !e.have_shape || !e.have_offsets)
    return make_error("{}: tensor \"{}\" lacks {}", path, printable(t.name),
                      !e.have_dtype   ? "dtype"
                      : !e.have_shape ? "shape"
                                      : "data_offsets");
  if (e.end < e.begin)
    return make_error("{}: tensor \"{}\": data_offsets [{}, {}] run backwards", path,
                      printable(t.name), e.begin, e.end);
  uint64_t numel = 1;
  for (uint64_t d : t.shape)
    if (__builtin_mul_overflow(numel, d, &numel))
      return make_error("{}: tensor \"{}\": shape product overflows 64 bits", path,
                        printable(t.name));
  uint64_t nbytes;
  if (__builtin_mul_overflow(numel, uint64_t(dtype_size(t.dtype)), &nbytes))
    return make_error("{}: tensor \"{}\": {} x {} elements: byte count overflows 64 bits", path,
                      printable(t.name), dtype_name(t.dtype), numel);
  if (nbytes != e.end - e.begin)
    return make_error("{}: tensor \"{}\": {} x {} elements need {} bytes but data_offsets give {}",
                      path, printable(t.name), dtype_name(t.dtype), numel, nbytes, e.end - e.begin);
  t.numel = numel;
  t.nbytes = nbytes;
  t.offset = e.begin;
  return ok_status();
}

Result<TensorInfo> parse_tensor(const std::string& path, std::string_view key,
                                simdjson::dom::element val, EntryStorage& store) {
  TensorInfo t{};                     // dtype is set below, or the entry is refused (check_sizes)
  if (key.size() > store.names_left)  // cannot happen: header_storage_needs counted every name
    return make_error("{}: tensor \"{}\": name storage exhausted", path, printable(key));
  std::memcpy(store.names, key.data(), key.size());
  t.name = {store.names, key.size()};
  store.names += key.size();
  store.names_left -= key.size();
  simdjson::dom::object obj;
  if (val.get_object().get(obj))
    return make_error("{}: tensor \"{}\" must be an object with dtype, shape and data_offsets",
                      path, printable(key));
  RawEntry e;
  FC_TRY(parse_fields(path, key, obj, store, t, e));
  FC_TRY(check_sizes(path, e, t));
  return t;
}

// The data region must be tiled exactly: sorted by offset, each tensor starts where the last ended,
// and the last ends at the end of the file.
Status check_tiling(const std::string& path, const std::vector<TensorInfo>& tensors,
                    uint64_t data_size) {
  // The common case, tensors listed in data order (the safetensors writers lay a file out in its
  // header's order when its dtypes agree): one pass, no sort. A chain that tiles the data in this
  // order tiles it in offset order too. Any other order, or a gap or an overlap, takes the sorted
  // walk, which names the fault.
  uint64_t chained_end = 0;
  bool chained = true;
  for (const auto& t : tensors) {
    if (t.offset != chained_end) {
      chained = false;
      break;
    }
    chained_end = t.offset + t.nbytes;
  }
  if (chained && chained_end == data_size) return ok_status();
  std::vector<const TensorInfo*> order;
  order.reserve(tensors.size());
  for (const auto& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->offset != b->offset ? a->offset < b->offset : a->nbytes < b->nbytes;
  });
  uint64_t expect = 0;
  for (const TensorInfo* t : order) {
    if (t->offset != expect)
      return make_error(
          "{}: tensor \"{}\" starts at data offset {} but the previous tensor ended at {} ({}); "
          "the header is corrupt",
          path, printable(t->name), t->offset, expect, t->offset < expect ? "overlap" : "gap");
    expect = t->offset + t->nbytes;
  }
  if (expect != data_size)
    return make_error("{}: tensors cover {} data bytes but the file holds {} ({})", path, expect,
                      data_size, expect > data_size ? "truncated file" : "trailing bytes");
  return ok_status();
}

}  // namespace

Status SafetensorsFile::parse_header(std::string_view json, uint64_t data_size,
                                     HeaderParser& header_parser) {
  // The DOM parser dispatches at run time to the best SIMD kernel of the machine, validates UTF-8
  // and rejects trailing content; it keeps duplicate keys, which the index detects below.
  simdjson::dom::parser& parser = header_parser.impl_->parser;
  simdjson::dom::element doc;
  // `json` is header_, allocated with simdjson's padding after it: parsed in place, not copied.
  if (auto e = parser.parse(json.data(), json.size(), /*realloc_if_needed=*/false).get(doc))
    return make_error("{}: header is not valid JSON ({}); the file is corrupt or not safetensors",
                      path_, simdjson::error_message(e));
  simdjson::dom::object root;
  if (doc.get_object().get(root)) return make_error("{}: header must be a JSON object", path_);

  size_t name_bytes = 0, dims = 0;
  header_storage_needs(root, name_bytes, dims);
  names_ = std::make_unique_for_overwrite<char[]>(std::max<size_t>(name_bytes, 1));
  dims_ = std::make_unique_for_overwrite<uint64_t[]>(std::max<size_t>(dims, 1));
  EntryStorage store{names_.get(), name_bytes, dims_.get(), dims};
  tensors_.reserve(root.size());
  for (auto [key, val] : root) {
    if (key == "__metadata__") {
      FC_TRY(parse_metadata(path_, val, metadata_));
      continue;
    }
    FC_ASSIGN(t, parse_tensor(path_, key, val, store));
    tensors_.push_back(std::move(t));
  }
  // Indexed once tensors_ is complete (the keys view names_).
  index_ = NameIndex(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); ++i) {
    TensorInfo& t = tensors_[i];
    t.name_hash = NameIndex::hash(t.name);
    if (index_.insert(t.name, t.name_hash, uint32_t(i)) != NameIndex::kAbsent)
      return make_error("{}: tensor \"{}\" appears twice in the header", path_, printable(t.name));
  }
  FC_TRY(check_tiling(path_, tensors_, data_size));
  const uint64_t data_start = 8 + json.size();
  for (auto& t : tensors_) t.offset += data_start;
  return ok_status();
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  const uint32_t i = index_.find(name);
  return i == NameIndex::kAbsent ? nullptr : &tensors_[i];
}

Result<std::string> SafetensorsFile::read_bytes(const TensorInfo& t) const {
  std::string out(t.nbytes, '\0');
  FC_TRY(read_bytes_into(t, out.data()));
  return out;
}

Status SafetensorsFile::read_bytes_into(const TensorInfo& t, char* dst) const {
  if (!pread_all(fd_, dst, t.nbytes, t.offset))
    return make_error("{}: file ended while reading tensor \"{}\" (truncated after it was opened?)",
                      path_, t.name);
  return ok_status();
}

bool SafetensorsFile::read_at(uint64_t offset, size_t n, char* dst) const {
  return pread_all(fd_, dst, n, offset);
}

Result<std::vector<float>> SafetensorsFile::read_f32(const TensorInfo& t) const {
  if (!dtype_is_float_supported(t.dtype))
    return make_error(
        "{}: tensor \"{}\" has dtype {}; fusecheck reads F32, F16 and BF16 (convert "
        "the checkpoint, or dequantize it first)",
        path_, t.name, dtype_name(t.dtype));
  FC_ASSIGN(raw, read_bytes(t));
  std::vector<float> out(t.numel);
  convert_to_f32(t.dtype, raw.data(), t.numel, out.data());
  return out;
}

Result<std::span<const std::byte>> SafetensorsFile::mapped(const TensorInfo& t) const {
  if (!map_) {
    // A file that shrank since the header was validated would SIGBUS on access: refuse to map it.
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || static_cast<uint64_t>(st.st_size) != file_size_)
      return make_error(
          "{}: file changed size since it was opened (expected {} bytes); was it "
          "being written?",
          path_, file_size_);
    void* p = ::mmap(nullptr, file_size_, PROT_READ, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) return make_error("{}: mmap failed: {}", path_, strerror(errno));
    map_ = p;
  }
  return std::span<const std::byte>(static_cast<const std::byte*>(map_) + t.offset, t.nbytes);
}

}  // namespace fusecheck
