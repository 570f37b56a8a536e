#include "outrigger/upstream/outlier.hpp"

#include <gtest/gtest.h>

namespace outrigger::upstream {
namespace {

using namespace std::chrono_literals;
using Result = OutlierDetector::Result;
using Clock = OutlierDetector::Clock;

std::int64_t ms(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

config::OutlierDetection od(std::uint32_t percent = 50) {
  config::OutlierDetection c;
  c.consecutive_5xx = 5;
  c.consecutive_gateway_failure = 3;
  c.interval = 10s;
  c.base_ejection_time = 30s;
  c.max_ejection_time = 300s;
  c.max_ejection_percent = percent;
  return c;
}

struct Fixture {
  explicit Fixture(std::size_t n, config::OutlierDetection c = od())
      : set(std::vector<std::string>(n, "e")), detector(c, set, total) {}
  observability::EndpointSet set;
  std::atomic<std::uint64_t> total{0};
  OutlierDetector detector;
  bool record(std::size_t i, Result r, int times, Clock::time_point now) {
    bool ejected = false;
    for (int k = 0; k < times; ++k) ejected = detector.record(i, r, now) || ejected;
    return ejected;
  }
};

TEST(OutlierDetector, ClassifiesStatuses) {
  EXPECT_EQ(OutlierDetector::classify(200), Result::success);
  EXPECT_EQ(OutlierDetector::classify(404), Result::success);
  EXPECT_EQ(OutlierDetector::classify(500), Result::error_5xx);
  EXPECT_EQ(OutlierDetector::classify(503), Result::gateway_failure);
}

TEST(OutlierDetector, EjectsAfterConsecutive5xxForTheBaseTime) {
  Fixture f(4);
  const auto t0 = Clock::now();
  EXPECT_FALSE(f.record(1, Result::error_5xx, 4, t0));
  EXPECT_TRUE(f.set.data[1].available(ms(t0)));
  EXPECT_TRUE(f.record(1, Result::error_5xx, 1, t0));
  EXPECT_FALSE(f.set.data[1].available(ms(t0)));
  EXPECT_FALSE(f.set.data[1].available(ms(t0 + 29s)));
  EXPECT_TRUE(f.set.data[1].available(ms(t0 + 30s)));  // back by itself
  EXPECT_EQ(f.total.load(), 1u);
}

TEST(OutlierDetector, ASuccessResetsTheCount) {
  Fixture f(4);
  const auto t0 = Clock::now();
  f.record(0, Result::error_5xx, 4, t0);
  f.record(0, Result::success, 1, t0);
  EXPECT_FALSE(f.record(0, Result::error_5xx, 4, t0));
  EXPECT_TRUE(f.set.data[0].available(ms(t0)));
}

TEST(OutlierDetector, GatewayFailuresHaveTheirOwnThreshold) {
  Fixture f(4);
  const auto t0 = Clock::now();
  EXPECT_TRUE(f.record(2, Result::gateway_failure, 3, t0));
  // A plain 500 breaks a gateway streak but not a 5xx one.
  Fixture g(4);
  g.record(2, Result::gateway_failure, 2, t0);
  g.record(2, Result::error_5xx, 1, t0);
  EXPECT_FALSE(g.record(2, Result::gateway_failure, 1, t0));
  EXPECT_TRUE(g.record(2, Result::error_5xx, 1, t0));  // the fifth 5xx in a row
}

TEST(OutlierDetector, NeverEjectsMoreThanTheMaxPercentButAlwaysOne) {
  Fixture f(4, od(50));
  const auto t0 = Clock::now();
  EXPECT_TRUE(f.record(0, Result::gateway_failure, 3, t0));
  EXPECT_TRUE(f.record(1, Result::gateway_failure, 3, t0));
  EXPECT_FALSE(f.record(2, Result::gateway_failure, 3, t0));  // 2 of 4 out already
  EXPECT_TRUE(f.set.data[2].available(ms(t0)));

  Fixture one(2, od(10));  // 10 % of 2 rounds down to 0: one may still go
  EXPECT_TRUE(one.record(0, Result::gateway_failure, 3, t0));
  EXPECT_FALSE(one.record(1, Result::gateway_failure, 3, t0));
}

TEST(OutlierDetector, EjectsLongerEachTimeAndForgetsWithTime) {
  Fixture f(4);
  const auto t0 = Clock::now();
  f.record(0, Result::gateway_failure, 3, t0);          // 30 s
  const auto t1 = t0 + 30s;
  f.record(0, Result::gateway_failure, 3, t1);          // again at once: 60 s
  EXPECT_FALSE(f.set.data[0].available(ms(t1 + 59s)));
  EXPECT_TRUE(f.set.data[0].available(ms(t1 + 60s)));
  const auto t2 = t1 + 60s + 100s;                      // 10 intervals in service: the multiplier is gone
  f.record(0, Result::gateway_failure, 3, t2);
  EXPECT_TRUE(f.set.data[0].available(ms(t2 + 30s)));
}

TEST(OutlierDetector, CapsTheEjectionTime) {
  auto c = od();
  c.max_ejection_time = 45s;
  Fixture f(4, c);
  auto t = Clock::now();
  for (int i = 0; i < 5; ++i) {
    f.record(0, Result::gateway_failure, 3, t);
    t += 45s;
  }
  EXPECT_TRUE(f.set.data[0].available(ms(t)));
}

}  // namespace
}  // namespace outrigger::upstream
