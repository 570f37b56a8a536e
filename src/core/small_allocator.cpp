#include "outrigger/core/small_allocator.hpp"
#include "outrigger/core/pool_release.hpp"

#include <algorithm>
#include <array>
#include <vector>

namespace outrigger::core::small_pool {

namespace {

constexpr std::size_t kClasses = 6;  // 64, 128, 256, 512, 1024, 2048 bytes
constexpr std::size_t kMaxBytes = 2048;
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
  std::array<std::vector<void*>, kClasses> free;  // stacks: the most recently freed on top
  std::array<std::size_t, kClasses> low_water{};  // the fewest free blocks since release_idle()
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
  auto& l = lists();
  auto& free = l.free[c];
  if (!free.empty()) {
    void* p = free.back();
    free.pop_back();
    if (free.size() < l.low_water[c]) l.low_water[c] = free.size();
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

std::size_t release_idle() {
  if (lists_gone) return 0;
  auto& l = lists();
  std::size_t bytes = 0;
  for (std::size_t c = 0; c < kClasses; ++c) {
    auto& free = l.free[c];
    const auto idle = std::min(l.low_water[c], free.size());
    for (std::size_t i = 0; i < idle; ++i) ::operator delete(free[i], std::align_val_t{alignof(std::max_align_t)});
    free.erase(free.begin(), free.begin() + static_cast<std::ptrdiff_t>(idle));
    if (free.capacity() > 4 * (free.size() + 16)) free.shrink_to_fit();
    l.low_water[c] = free.size();
    bytes += idle * (std::size_t{64} << c);
  }
  return bytes;
}

std::size_t free_bytes() {
  if (lists_gone) return 0;
  auto& l = lists();
  std::size_t bytes = 0;
  for (std::size_t c = 0; c < kClasses; ++c) bytes += l.free[c].size() * (std::size_t{64} << c);
  return bytes;
}

}  // namespace outrigger::core::small_pool
