// Memory that follows load. A burst grows every thread's free lists (I/O
// buffers, header-field blocks) and glibc's heaps; once it is over, each
// worker's sweep gives back the blocks its pools did not hand out since the
// previous sweep (release_idle_pools, once a second, off the request path),
// and the main thread's MemorySweep asks glibc to return the free pages of
// every arena to the kernel (malloc_trim) when some pool gave memory back
// since its last trim, so that a steady load is never trimmed.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>

#include "outrigger/observability/memory_stats.hpp"

namespace outrigger::server {

// The calling thread's pools: their idle blocks go back to the heap, and
// `slice` shows what they hold and what went back.
void release_idle_pools(observability::MemorySlice& slice);

// The main thread's part, every kInterval.
class MemorySweep {
 public:
  static constexpr std::chrono::seconds kInterval{5};
  MemorySweep(boost::asio::io_context& io, observability::MemoryStats& stats) : timer_(io), stats_(stats) {}
  void start() { arm(); }
  void stop() { timer_.cancel(); }
  // The main thread's pools, then malloc_trim(0) if any pool gave memory
  // back since the last trim. Returns whether it trimmed.
  bool sweep();

 private:
  void arm();
  boost::asio::steady_timer timer_;
  observability::MemoryStats& stats_;
  std::uint64_t released_at_last_trim_ = 0;
};

}  // namespace outrigger::server
