// Fixed-size byte buffers recycled per worker, so that streaming a body does
// not allocate per request. Single-threaded: one pool per worker.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace outrigger::core {

class BufferPool {
 public:
  static constexpr std::size_t kBufferSize = 16 * 1024;

  class Buffer {
   public:
    Buffer() = default;
    Buffer(BufferPool* pool, std::unique_ptr<char[]> data) : pool_(pool), data_(std::move(data)) {}
    Buffer(Buffer&&) = default;
    Buffer& operator=(Buffer&&) = default;
    ~Buffer() {
      if (pool_ && data_) pool_->put(std::move(data_));
    }
    char* data() const { return data_.get(); }
    static constexpr std::size_t size() { return kBufferSize; }

   private:
    BufferPool* pool_ = nullptr;
    std::unique_ptr<char[]> data_;
  };

  explicit BufferPool(std::size_t max_free = 64) : max_free_(max_free) {}
  Buffer get() {
    if (free_.empty()) return Buffer(this, std::unique_ptr<char[]>(new char[kBufferSize]));
    auto d = std::move(free_.back());
    free_.pop_back();
    return Buffer(this, std::move(d));
  }

 private:
  void put(std::unique_ptr<char[]> d) {
    if (free_.size() < max_free_) free_.push_back(std::move(d));
  }
  std::size_t max_free_;
  std::vector<std::unique_ptr<char[]>> free_;
};

}  // namespace outrigger::core
