// An allocator for small, short-lived objects that come and go with every
// request: HTTP header fields (Beast allocates one block per field) and an
// HTTP/1.1 connection's per-request state. Blocks are recycled through
// per-thread free lists by size class (64 to 2048 bytes), so a request costs
// no malloc once a worker is warm; larger requests go to the heap. Each
// thread's sweep frees what no allocation took since its last sweep
// (core/pool_release.hpp). A block freed on another thread joins that
// thread's lists, which is safe (each list is touched by one thread only).
#pragma once

#include <cstddef>
#include <new>

namespace outrigger::core {

namespace small_pool {
void* allocate(std::size_t bytes);
void deallocate(void* p, std::size_t bytes) noexcept;
}  // namespace small_pool

template <class T>
struct SmallAllocator {
  using value_type = T;
  SmallAllocator() noexcept = default;
  template <class U>
  SmallAllocator(const SmallAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(small_pool::allocate(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { small_pool::deallocate(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const SmallAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace outrigger::core
