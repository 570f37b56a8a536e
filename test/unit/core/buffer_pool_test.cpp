#include "outrigger/core/buffer_pool.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace outrigger::core {
namespace {

TEST(BufferPool, RecyclesTheLastBlockGivenBack) {
  BufferPool pool;
  char* a = pool.take();
  pool.give(a);
  EXPECT_EQ(pool.take(), a);
  pool.give(a);
}

TEST(BufferPool, KeepsAtMostItsBoundFree) {
  BufferPool pool(4);
  std::vector<char*> blocks;
  for (int i = 0; i < 10; ++i) blocks.push_back(pool.take());
  for (char* p : blocks) pool.give(p);
  EXPECT_EQ(pool.free_blocks(), 4u);
}

TEST(BufferPool, ReleasesWhatABurstLeftOnceItStaysUnused) {
  BufferPool pool(64);
  std::vector<char*> blocks;
  for (int i = 0; i < 50; ++i) blocks.push_back(pool.take());
  for (char* p : blocks) pool.give(p);
  EXPECT_EQ(pool.free_bytes(), 50u * BufferPool::kBufferSize);
  EXPECT_EQ(pool.release_idle(), 0u);  // the first sweep after the burst only marks
  EXPECT_EQ(pool.release_idle(), 50u * BufferPool::kBufferSize);
  EXPECT_EQ(pool.free_blocks(), 0u);
}

TEST(BufferPool, KeepsTheBlocksASteadyLoadTakes) {
  BufferPool pool(64);
  std::vector<char*> blocks;
  for (int i = 0; i < 50; ++i) blocks.push_back(pool.take());
  for (char* p : blocks) pool.give(p);
  pool.release_idle();
  for (int round = 0; round < 3; ++round) {
    // Five buffers in use at once between two sweeps: five stay pooled.
    std::vector<BufferPool::Buffer> in_use;
    for (int i = 0; i < 5; ++i) in_use.push_back(pool.get());
    in_use.clear();
    pool.release_idle();
  }
  EXPECT_EQ(pool.free_blocks(), 5u);
  // The load stops: the next sweep marks them, the one after frees them.
  pool.release_idle();
  EXPECT_EQ(pool.free_blocks(), 0u);
}

}  // namespace
}  // namespace outrigger::core
