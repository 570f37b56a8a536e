// Fixed-size byte blocks recycled per thread (each worker is one thread), so
// that read buffers and streamed bodies do not go to malloc per request, and
// an idle connection can give its buffers back without costing the next
// request an allocation. The free list follows the load down: release_idle(),
// called periodically by the owning thread (the worker's sweep), frees the
// blocks that no one took since the previous call, so what a burst left
// behind goes back to the heap while a steady load keeps its working set.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace outrigger::core {

class BufferPool {
 public:
  static constexpr std::size_t kBufferSize = 16 * 1024;

  // A block on loan, returned to its pool when destroyed.
  class Buffer {
   public:
    Buffer() = default;
    Buffer(BufferPool* pool, char* data) : pool_(pool), data_(data) {}
    Buffer(Buffer&& o) noexcept : pool_(o.pool_), data_(o.data_) { o.data_ = nullptr; }
    Buffer& operator=(Buffer&& o) noexcept {
      std::swap(pool_, o.pool_);
      std::swap(data_, o.data_);
      return *this;
    }
    ~Buffer() {
      if (data_) pool_->give(data_);
    }
    char* data() const { return data_; }
    static constexpr std::size_t size() { return kBufferSize; }

   private:
    BufferPool* pool_ = nullptr;
    char* data_ = nullptr;
  };

  explicit BufferPool(std::size_t max_free = 64) : max_free_(max_free) {}
  ~BufferPool() {
    for (char* p : free_) delete[] p;
  }
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  Buffer get() { return Buffer(this, take()); }

  char* take() {
    if (free_.empty()) return new char[kBufferSize];
    char* p = free_.back();
    free_.pop_back();
    if (free_.size() < low_water_) low_water_ = free_.size();
    return p;
  }
  void give(char* p) {
    if (free_.size() < max_free_) {
      free_.push_back(p);
    } else {
      delete[] p;
    }
  }

  // Frees the blocks that stayed on the free list since the last call (the
  // list's low-water mark: those at its bottom were not taken once); returns
  // the bytes freed. Not on the request path: a periodic sweep's job.
  std::size_t release_idle();
  std::size_t free_blocks() const { return free_.size(); }
  std::size_t free_bytes() const { return free_.size() * kBufferSize; }

 private:
  std::size_t max_free_;
  std::vector<char*> free_;  // a stack: the most recently given back on top
  std::size_t low_water_ = 0;  // the fewest free blocks since release_idle()
};

// The pool of the calling thread.
BufferPool& thread_buffer_pool();

// An allocator for byte buffers (Beast's flat_buffer): requests up to one
// block come from the calling thread's pool, larger ones from the heap.
template <class T>
struct PooledAllocator {
  using value_type = T;
  PooledAllocator() noexcept = default;
  template <class U>
  PooledAllocator(const PooledAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    if (n * sizeof(T) <= BufferPool::kBufferSize) return reinterpret_cast<T*>(thread_buffer_pool().take());
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n * sizeof(T) <= BufferPool::kBufferSize) {
      thread_buffer_pool().give(reinterpret_cast<char*>(p));
    } else {
      ::operator delete(p);
    }
  }
  template <class U>
  bool operator==(const PooledAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace outrigger::core
