// safetensors reader: header parsing and layout validation, read through pread (never mmap) for the
// check path so a file truncated under us is an error, not a SIGBUS; mmap for the engine's
// zero-copy use.
//
// File layout: [u64 little-endian N][N bytes of JSON header][data]. The header maps tensor names to
// {dtype, shape, data_offsets: [begin, end)} relative to the start of data, plus optional
// "__metadata__" (string -> string). Validation follows the reference implementation: offsets
// sorted by begin must tile the data region exactly (no gaps, overlaps or trailing bytes), and
// every tensor's byte count must equal numel * dtype size.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "util/name_index.h"
#include "util/result.h"

namespace fusecheck {

enum class DType : uint8_t { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2 };

std::string_view dtype_name(DType t);
size_t dtype_size(DType t);
// The dtypes fusecheck can compute with. The others are recognised and reported, not converted.
bool dtype_is_float_supported(DType t);
Result<DType> parse_dtype(std::string_view name);

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's cap

// One tensor's header entry. `name` and `shape` view storage of the SafetensorsFile that parsed
// them (one block each per file, not two allocations per tensor: a 235B checkpoint has ~37,000
// tensors): valid while that file lives.
struct TensorInfo {
  std::string_view name;
  DType dtype;
  std::span<const uint64_t> shape;  // row-major, outermost first
  uint64_t numel = 0;
  uint64_t offset = 0;  // absolute byte offset in the file
  uint64_t nbytes = 0;
  uint64_t name_hash = 0;  // NameIndex::hash(name), computed once at parse
};

// Shapes compare by their dimensions.
inline bool same_shape(std::span<const uint64_t> a, std::span<const uint64_t> b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

// A reusable header parser: opening many shards with one parser reuses its buffers instead of
// allocating (and page-faulting) fresh ones per shard.
class HeaderParser {
 public:
  HeaderParser();
  ~HeaderParser();

 private:
  friend class SafetensorsFile;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class SafetensorsFile {
 public:
  // Opens `path` (symlinks followed), reads and validates the header. Reads no tensor data.
  static Result<SafetensorsFile> open(const std::string& path, HeaderParser* parser = nullptr);

  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  uint64_t file_size() const { return file_size_; }
  std::string_view header_json() const { return {header_.get(), header_size_}; }  // raw header
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::unordered_map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo* find(std::string_view name) const;

  // Copies a tensor's raw bytes with pread. Fails (never crashes) if the file shrank since open.
  Result<std::string> read_bytes(const TensorInfo& t) const;
  // The same into t.nbytes bytes at `dst`, with the same error.
  Status read_bytes_into(const TensorInfo& t, char* dst) const;
  // `n` bytes at file offset `offset` into `dst` (pread, retrying short reads); false if the file
  // ends first. For reads that span several tensors; read_bytes_into names the tensor at fault.
  bool read_at(uint64_t offset, size_t n, char* dst) const;
  // Reads a tensor and converts it to fp32. F32, F16 and BF16 only; other dtypes are an error
  // naming the dtype.
  Result<std::vector<float>> read_f32(const TensorInfo& t) const;

  // Maps the whole file read-only (once) and returns the tensor's bytes in place, zero-copy.
  // Engine path only: a file truncated after mapping raises SIGBUS on access (see
  // docs/RELIABILITY).
  Result<std::span<const std::byte>> mapped(const TensorInfo& t) const;

 private:
  SafetensorsFile() = default;
  Status parse_header(std::string_view json, uint64_t data_size, HeaderParser& parser);

  std::string path_;
  int fd_ = -1;
  uint64_t file_size_ = 0;
  // The raw header, followed by simdjson's padding (zero) so that it is parsed in place. Not a
  // std::string: that zero-fills the bytes before they are read (~3 MB over a 235B checkpoint).
  std::unique_ptr<char[]> header_;  // [header_size_ + simdjson padding]
  size_t header_size_ = 0;
  std::vector<TensorInfo> tensors_;
  // The storage that tensors_' names and shapes view, each filled once by parse_header.
  std::unique_ptr<char[]> names_;     // [sum of the names' lengths]
  std::unique_ptr<uint64_t[]> dims_;  // [sum of the shapes' ranks]
  // name -> position in tensors_. The keys view tensors_[i].name: built once tensors_ is complete,
  // which then never changes, and a move keeps its buffer, so the views stay valid.
  NameIndex index_;
  std::unordered_map<std::string, std::string> metadata_;
  mutable void* map_ = nullptr;
};

// Converts `n` elements of `dtype` at `src` to fp32 (F32, F16, BF16).
void convert_to_f32(DType dtype, const void* src, size_t n, float* dst);

}  // namespace fusecheck
