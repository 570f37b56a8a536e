#include "outrigger/core/small_allocator.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <thread>

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

}  // namespace
}  // namespace outrigger::core
