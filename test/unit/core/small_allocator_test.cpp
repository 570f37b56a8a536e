#include "outrigger/core/small_allocator.hpp"
#include "outrigger/core/pool_release.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

#include "outrigger/core/http_fields.hpp"

namespace outrigger::core {
namespace {

TEST(SmallAllocator, RecyclesBlocksOfTheSameClass) {
  void* a = small_pool::allocate(100);  // class 128
  std::memset(a, 1, 128);
  small_pool::deallocate(a, 100);
  void* b = small_pool::allocate(120);  // same class: the same block back
  EXPECT_EQ(a, b);
  small_pool::deallocate(b, 120);
  void* c = small_pool::allocate(20);  // another class
  EXPECT_NE(c, b);
  small_pool::deallocate(c, 20);
}

TEST(SmallAllocator, LargeBlocksGoToTheHeap) {
  void* p = small_pool::allocate(64 * 1024);
  std::memset(p, 2, 64 * 1024);
  small_pool::deallocate(p, 64 * 1024);
}

TEST(SmallAllocator, ABlockFreedOnAnotherThreadIsSafe) {
  void* p = small_pool::allocate(300);
  std::thread([p] { small_pool::deallocate(p, 300); }).join();
  void* q = small_pool::allocate(300);
  small_pool::deallocate(q, 300);
}

TEST(SmallAllocator, BacksBeastHeaderFields) {
  HttpFields f;
  for (int i = 0; i < 100; ++i) f.insert("x-header-" + std::to_string(i), std::string(static_cast<std::size_t>(i) * 20, 'v'));
  EXPECT_EQ(f["x-header-42"], std::string(840, 'v'));
  f.erase("x-header-42");
  EXPECT_EQ(f.count("x-header-42"), 0u);
}

// Each on a thread of its own: fresh lists, nothing left by other tests.
TEST(SmallAllocator, ReleasesBlocksNoAllocationTookSinceTheLastSweep) {
  std::thread([] {
    std::vector<void*> blocks;
    for (int i = 0; i < 100; ++i) blocks.push_back(small_pool::allocate(200));  // class 256
    for (void* p : blocks) small_pool::deallocate(p, 200);
    EXPECT_EQ(small_pool::free_bytes(), 100u * 256);
    EXPECT_EQ(small_pool::release_idle(), 0u);  // the first sweep only marks
    EXPECT_EQ(small_pool::release_idle(), 100u * 256);
    EXPECT_EQ(small_pool::free_bytes(), 0u);
  }).join();
}

// The largest class holds an HTTP/1.1 connection's per-request state (about
// 1.9 KB), which a burst of connections leaves in the pool: the sweep frees it.
TEST(SmallAllocator, TheTwoKilobyteClassIsPooledAndReleasedLikeTheOthers) {
  std::thread([] {
    std::vector<void*> blocks;
    for (int i = 0; i < 50; ++i) blocks.push_back(small_pool::allocate(1900));
    for (void* p : blocks) small_pool::deallocate(p, 1900);
    EXPECT_EQ(small_pool::free_bytes(), 50u * 2048);
    void* again = small_pool::allocate(2048);
    EXPECT_EQ(again, blocks.back());  // recycled, not from the heap
    small_pool::deallocate(again, 2048);
    small_pool::release_idle();
    EXPECT_EQ(small_pool::release_idle(), 50u * 2048);
    EXPECT_EQ(small_pool::free_bytes(), 0u);
  }).join();
}

TEST(SmallAllocator, KeepsWhatASteadyLoadUses) {
  std::thread([] {
    std::vector<void*> blocks;
    for (int i = 0; i < 100; ++i) blocks.push_back(small_pool::allocate(64));
    for (void* p : blocks) small_pool::deallocate(p, 64);
    small_pool::release_idle();
    for (int round = 0; round < 3; ++round) {
      // Ten blocks in use at a time between two sweeps: those ten stay.
      for (int i = 0; i < 10; ++i) blocks[static_cast<std::size_t>(i)] = small_pool::allocate(64);
      for (int i = 0; i < 10; ++i) small_pool::deallocate(blocks[static_cast<std::size_t>(i)], 64);
      small_pool::release_idle();
    }
    EXPECT_EQ(small_pool::free_bytes(), 10u * 64);
  }).join();
}

}  // namespace
}  // namespace outrigger::core
