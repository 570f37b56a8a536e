#include "outrigger/core/small_allocator.hpp"

#include <array>
#include <vector>

namespace outrigger::core::small_pool {

namespace {

constexpr std::size_t kClasses = 5;  // 64, 128, 256, 512, 1024 bytes
constexpr std::size_t kMaxBytes = 1024;
constexpr std::size_t kMaxFreePerClass = 4096;

std::size_t class_of(std::size_t bytes) {
  std::size_t c = 0;
  for (std::size_t size = 64; size < bytes; size <<= 1) ++c;
  return c;
}

// Set when the calling thread's lists are gone (thread exit): later frees go
// straight to the heap. A trivially destructible thread_local, so it outlives them.
thread_local bool lists_gone = false;

struct Lists {
  std::array<std::vector<void*>, kClasses> free;
  ~Lists() {
    lists_gone = true;
    for (std::size_t c = 0; c < kClasses; ++c)
      for (void* p : free[c]) ::operator delete(p, std::align_val_t{alignof(std::max_align_t)});
  }
};

Lists& lists() {
  thread_local Lists l;
  return l;
}

}  // namespace

void* allocate(std::size_t bytes) {
  if (bytes > kMaxBytes) return ::operator new(bytes, std::align_val_t{alignof(std::max_align_t)});
  const auto c = class_of(bytes);
  if (lists_gone) return ::operator new(std::size_t{64} << c, std::align_val_t{alignof(std::max_align_t)});
  auto& free = lists().free[c];
  if (!free.empty()) {
    void* p = free.back();
    free.pop_back();
    return p;
  }
  return ::operator new(std::size_t{64} << c, std::align_val_t{alignof(std::max_align_t)});
}

void deallocate(void* p, std::size_t bytes) noexcept {
  if (!p) return;
  if (bytes > kMaxBytes) {
    ::operator delete(p, std::align_val_t{alignof(std::max_align_t)});
    return;
  }
  const auto c = class_of(bytes);
  if (lists_gone) {
    ::operator delete(p, std::align_val_t{alignof(std::max_align_t)});
    return;
  }
  auto& free = lists().free[c];
  if (free.size() < kMaxFreePerClass) {
    try {
      free.push_back(p);
      return;
    } catch (...) {
    }
  }
  ::operator delete(p, std::align_val_t{alignof(std::max_align_t)});
}

}  // namespace outrigger::core::small_pool
