#include "outrigger/upstream/retry_budget.hpp"

#include <gtest/gtest.h>

namespace outrigger::upstream {
namespace {

using namespace std::chrono_literals;

TEST(RetryBudget, AllowsTheFloorWithNoTraffic) {
  RetryBudget b({.ratio = 0.2, .min_retries_per_second = 1}, 1);  // floor: 10 per 10 s
  const auto now = RetryBudget::Clock::now();
  int allowed = 0;
  for (int i = 0; i < 50; ++i) allowed += b.try_retry(now);
  EXPECT_EQ(allowed, 10);
}

TEST(RetryBudget, AllowsARatioOfTheRequests) {
  RetryBudget b({.ratio = 0.5, .min_retries_per_second = 0}, 1);
  const auto now = RetryBudget::Clock::now();
  for (int i = 0; i < 100; ++i) b.record_request(now);
  int allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += b.try_retry(now);
  EXPECT_EQ(allowed, 50);
}

TEST(RetryBudget, ForgetsTrafficOlderThanTheWindow) {
  RetryBudget b({.ratio = 0, .min_retries_per_second = 1}, 1);
  const auto t0 = RetryBudget::Clock::now();
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(b.try_retry(t0));
  EXPECT_FALSE(b.try_retry(t0));
  EXPECT_FALSE(b.try_retry(t0 + 5s));
  EXPECT_TRUE(b.try_retry(t0 + 11s));
}

TEST(RetryBudget, DividesTheFloorAmongWorkers) {
  RetryBudget b({.ratio = 0, .min_retries_per_second = 1}, 2);  // 5 per worker per 10 s
  const auto now = RetryBudget::Clock::now();
  int allowed = 0;
  for (int i = 0; i < 20; ++i) allowed += b.try_retry(now);
  EXPECT_EQ(allowed, 5);
}

}  // namespace
}  // namespace outrigger::upstream
