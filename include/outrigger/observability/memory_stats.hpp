// The memory sweeps' series (server/memory_sweep.hpp): what each thread's
// pools hold free and what the sweeps gave back, written by that thread (a
// worker's slice, or the main thread's), and the main thread's malloc_trim
// calls. Appended to /metrics by the admin listener.
#pragma once

#include <cstdint>
#include <string>

#include "outrigger/observability/stats.hpp"

namespace outrigger::observability {

struct MemorySlice {
  Gauge buffer_pool_free_bytes;  // core::BufferPool
  Gauge small_pool_free_bytes;   // core::small_pool (header fields)
  Counter buffer_pool_released_bytes;
  Counter small_pool_released_bytes;
  Counter idle_connections_purged;  // upstream keep-alive connections the idle pools' purges closed
};

struct MemoryStats {
  explicit MemoryStats(unsigned workers) : workers(workers) {}
  PerWorker<MemorySlice> workers;
  MemorySlice main;     // the main thread's own pools
  Counter trims;        // malloc_trim calls (main thread)
  Counter trim_micros;  // the time they took
  // What every sweep has given back so far, bytes of the free lists plus idle
  // connections closed by a purge (the main thread's "anything to trim?").
  std::uint64_t released() const;
  // The Prometheus text of these series.
  std::string scrape() const;
};

}  // namespace outrigger::observability
