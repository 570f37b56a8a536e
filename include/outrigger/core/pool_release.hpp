// What a thread's periodic sweep does with its own pools (core/buffer_pool.hpp
// has BufferPool::release_idle): the small-block lists of the calling thread
// (core/small_allocator.hpp) free the blocks no allocation took since the
// previous call, so that what a burst left goes back to the heap while a
// steady load keeps its working set. Never on the request path.
#pragma once

#include <cstddef>

namespace outrigger::core::small_pool {

// Frees the calling thread's idle blocks; returns the bytes freed.
std::size_t release_idle();
// The bytes the calling thread's lists hold now.
std::size_t free_bytes();

}  // namespace outrigger::core::small_pool
