#include "outrigger/server/memory_sweep.hpp"

#include <malloc.h>

#include "outrigger/core/buffer_pool.hpp"
#include "outrigger/core/pool_release.hpp"

namespace outrigger::server {

namespace {
void set(observability::Gauge& g, std::size_t v) { g.add(static_cast<std::int64_t>(v) - g.value()); }  // one writer
}  // namespace

void release_idle_pools(observability::MemorySlice& slice) {
  auto& buffers = core::thread_buffer_pool();
  slice.buffer_pool_released_bytes.inc(buffers.release_idle());
  set(slice.buffer_pool_free_bytes, buffers.free_bytes());
  slice.small_pool_released_bytes.inc(core::small_pool::release_idle());
  set(slice.small_pool_free_bytes, core::small_pool::free_bytes());
}

bool MemorySweep::sweep() {
  release_idle_pools(stats_.main);
  const auto released = stats_.released();
  if (released == released_at_last_trim_) return false;
  released_at_last_trim_ = released;
  // glibc keeps freed memory in its arenas (one per worker thread) and gives
  // back only the top of each heap, and only past a threshold that grows
  // with the largest block freed: a burst's memory, freed in the middle of
  // the heaps, stays resident. malloc_trim(0) walks every arena and returns
  // its free pages (madvise). It locks one arena at a time, so a worker that
  // allocates meanwhile waits at most for its own arena's walk; this runs
  // only after the pools gave memory back, i.e. once after a burst, never
  // under a steady load. The time it takes is counted.
  const auto t0 = std::chrono::steady_clock::now();
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
  stats_.trims.inc();
  stats_.trim_micros.inc(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count()));
  return true;
}

void MemorySweep::arm() {
  timer_.expires_after(kInterval);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    sweep();
    arm();
  });
}

}  // namespace outrigger::server
