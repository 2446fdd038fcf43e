#include "kernels/backend.h"

#include <utility>

namespace fusecheck {

Buffer::Buffer(std::shared_ptr<Backend> owner, void* data, size_t bytes)
    : owner_(std::move(owner)), data_(data), bytes_(bytes) {}

Buffer::~Buffer() {
  if (owner_ && data_) owner_->free(data_, bytes_);
}

Buffer::Buffer(Buffer&& o) noexcept
    : owner_(std::move(o.owner_)),
      data_(std::exchange(o.data_, nullptr)),
      bytes_(std::exchange(o.bytes_, 0)) {}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    if (owner_ && data_) owner_->free(data_, bytes_);
    owner_ = std::move(o.owner_);
    data_ = std::exchange(o.data_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

}  // namespace fusecheck
