#include "outrigger/server/memory_sweep.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "outrigger/core/buffer_pool.hpp"
#include "outrigger/core/small_allocator.hpp"

namespace outrigger::server {
namespace {

// A burst on a fresh thread: 20 buffers and 100 header-field blocks in use at once, then given back.
void burst() {
  std::vector<core::BufferPool::Buffer> buffers;
  for (int i = 0; i < 20; ++i) buffers.push_back(core::thread_buffer_pool().get());
  std::vector<void*> small;
  for (int i = 0; i < 100; ++i) small.push_back(core::small_pool::allocate(100));
  for (void* p : small) core::small_pool::deallocate(p, 100);
}

TEST(MemorySweep, ReleaseIdlePoolsShowsWhatThePoolsHoldAndWhatWentBack) {
  std::thread([] {
    observability::MemorySlice slice;
    burst();
    release_idle_pools(slice);  // marks
    EXPECT_EQ(slice.buffer_pool_free_bytes.value(), 20 * 16 * 1024);
    EXPECT_EQ(slice.small_pool_free_bytes.value(), 100 * 128);
    release_idle_pools(slice);  // nothing was taken since: all of it goes
    EXPECT_EQ(slice.buffer_pool_free_bytes.value(), 0);
    EXPECT_EQ(slice.small_pool_free_bytes.value(), 0);
    EXPECT_EQ(slice.buffer_pool_released_bytes.value(), 20u * 16 * 1024);
    EXPECT_EQ(slice.small_pool_released_bytes.value(), 100u * 128);
  }).join();
}

TEST(MemorySweep, TrimsOnlyAfterAPoolGaveMemoryBack) {
  boost::asio::io_context io;
  observability::MemoryStats stats(1);
  MemorySweep sweep(io, stats);
  sweep.sweep();  // whatever this thread's pools held from earlier tests
  sweep.sweep();
  EXPECT_FALSE(sweep.sweep());  // nothing released since: no trim
  const auto trims = stats.trims.value();
  std::thread([&] {
    burst();
    release_idle_pools(stats.workers[0]);
    release_idle_pools(stats.workers[0]);
  }).join();
  EXPECT_TRUE(sweep.sweep());
  EXPECT_EQ(stats.trims.value(), trims + 1);
  EXPECT_FALSE(sweep.sweep());
  EXPECT_EQ(stats.workers[0].buffer_pool_released_bytes.value(), 20u * 16 * 1024);
  const auto text = stats.scrape();
  std::string trims_line = "outrigger_malloc_trims_total ";
  trims_line += std::to_string(trims + 1);
  EXPECT_NE(text.find("outrigger_pool_released_bytes_total{pool=\"buffers\"}"), std::string::npos) << text;
  EXPECT_NE(text.find(trims_line), std::string::npos) << text;
}

}  // namespace
}  // namespace outrigger::server
