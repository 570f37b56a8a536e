#include "outrigger/upstream/breaker.hpp"

#include <gtest/gtest.h>

namespace outrigger::upstream {
namespace {

using namespace std::chrono_literals;
using Admission = CircuitBreaker::Admission;
using Outcome = CircuitBreaker::Outcome;
using State = CircuitBreaker::State;

config::Breaker small() {
  config::Breaker c;
  c.failure_rate = 0.5;
  c.minimum_requests = 10;
  c.window = 10s;
  c.open_duration = 5s;
  c.half_open_requests = 2;
  return c;
}

// Runs `n` calls at `now`, `failures` of them failing, spread evenly.
void calls(CircuitBreaker& b, int n, int failures, CircuitBreaker::Clock::time_point now) {
  for (int i = 0; i < n; ++i) {
    const bool failed = (i + 1) * failures / n > i * failures / n;
    const auto a = b.admit(now);
    if (a != Admission::rejected) b.record(a, failed ? Outcome::failure : Outcome::success, now);
  }
}

TEST(BreakerStateMachine, StaysClosedBelowTheMinimumRequests) {
  observability::BreakerData data;
  CircuitBreaker b(small(), data);
  const auto t0 = CircuitBreaker::Clock::now();
  calls(b, 9, 9, t0);
  EXPECT_EQ(b.state(), State::closed);
  EXPECT_EQ(b.admit(t0), Admission::allowed);
}

TEST(BreakerStateMachine, StaysClosedBelowTheFailureRate) {
  observability::BreakerData data;
  CircuitBreaker b(small(), data);
  const auto t0 = CircuitBreaker::Clock::now();
  calls(b, 100, 40, t0);
  EXPECT_EQ(b.state(), State::closed);
}

TEST(BreakerStateMachine, OpensAtTheFailureRateAndRejects) {
  observability::BreakerData data;
  CircuitBreaker b(small(), data);
  const auto t0 = CircuitBreaker::Clock::now();
  calls(b, 10, 0, t0);
  calls(b, 10, 10, t0 + 1s);  // 10 of 20 failed: 50 %
  EXPECT_EQ(b.state(), State::open);
  EXPECT_EQ(b.admit(t0 + 2s), Admission::rejected);
  EXPECT_EQ(b.admit(t0 + 5900ms), Admission::rejected);
  EXPECT_EQ(data.opened_total.load(), 1u);
}

TEST(BreakerStateMachine, ForgetsFailuresOlderThanTheWindow) {
  observability::BreakerData data;
  CircuitBreaker b(small(), data);
  const auto t0 = CircuitBreaker::Clock::now();
  calls(b, 9, 9, t0);
  calls(b, 9, 0, t0 + 11s);
  calls(b, 1, 1, t0 + 11s);  // 1 failure of 10 in the window: the old 9 are gone
  EXPECT_EQ(b.state(), State::closed);
}

TEST(BreakerStateMachine, HalfOpensAfterTheOpenDurationAndClosesOnSuccessfulProbes) {
  observability::BreakerData data;
  CircuitBreaker b(small(), data);
  const auto t0 = CircuitBreaker::Clock::now();
  calls(b, 10, 10, t0);
  ASSERT_EQ(b.state(), State::open);
  const auto t1 = t0 + 5s;
  const auto p1 = b.admit(t1), p2 = b.admit(t1);
  EXPECT_EQ(p1, Admission::probe);
  EXPECT_EQ(p2, Admission::probe);
  EXPECT_EQ(b.state(), State::half_open);
  EXPECT_EQ(b.admit(t1), Admission::rejected);  // only half_open_requests probes at once
  b.record(p1, Outcome::success, t1);
  EXPECT_EQ(b.state(), State::half_open);
  b.record(p2, Outcome::success, t1);
  EXPECT_EQ(b.state(), State::closed);
  EXPECT_EQ(b.admit(t1), Admission::allowed);
  // The failures that opened it are forgotten.
  calls(b, 1, 1, t1);
  EXPECT_EQ(b.state(), State::closed);
}

TEST(BreakerStateMachine, AFailedProbeOpensItAgain) {
  observability::BreakerData data;
  CircuitBreaker b(small(), data);
  const auto t0 = CircuitBreaker::Clock::now();
  calls(b, 10, 10, t0);
  const auto t1 = t0 + 5s;
  const auto p1 = b.admit(t1), p2 = b.admit(t1);
  b.record(p1, Outcome::success, t1);
  b.record(p2, Outcome::failure, t1);
  EXPECT_EQ(b.state(), State::open);
  EXPECT_EQ(b.admit(t1 + 4s), Admission::rejected);  // a full open_duration from the failed probe
  EXPECT_EQ(b.admit(t1 + 5s), Admission::probe);
  EXPECT_EQ(data.opened_total.load(), 2u);
}

TEST(BreakerStateMachine, AnIgnoredProbeIsHandedBack) {
  observability::BreakerData data;
  CircuitBreaker b(small(), data);
  const auto t0 = CircuitBreaker::Clock::now();
  calls(b, 10, 10, t0);
  const auto t1 = t0 + 5s;
  const auto p1 = b.admit(t1), p2 = b.admit(t1);
  b.record(p1, Outcome::ignored, t1);  // the client went away
  const auto p3 = b.admit(t1);
  EXPECT_EQ(p3, Admission::probe);
  b.record(p2, Outcome::success, t1);
  b.record(p3, Outcome::success, t1);
  EXPECT_EQ(b.state(), State::closed);
}

TEST(BreakerStateMachine, ProbesThatNeverReportAreGivenUp) {
  observability::BreakerData data;
  CircuitBreaker b(small(), data);
  const auto t0 = CircuitBreaker::Clock::now();
  calls(b, 10, 10, t0);
  const auto t1 = t0 + 5s;
  (void)b.admit(t1);
  (void)b.admit(t1);  // both probes lost: never recorded
  EXPECT_EQ(b.admit(t1 + 4s), Admission::rejected);
  const auto p = b.admit(t1 + 5s);
  EXPECT_EQ(p, Admission::probe);
  b.record(p, Outcome::success, t1 + 5s);
  b.record(b.admit(t1 + 5s), Outcome::success, t1 + 5s);
  EXPECT_EQ(b.state(), State::closed);
}

TEST(BreakerStateMachine, WorkersShareOneState) {
  observability::BreakerData data;
  CircuitBreaker a(small(), data), b(small(), data);
  const auto t0 = CircuitBreaker::Clock::now();
  calls(a, 5, 5, t0);
  calls(b, 5, 5, t0);
  EXPECT_EQ(a.state(), State::open);
  EXPECT_EQ(b.admit(t0), Admission::rejected);
}

}  // namespace
}  // namespace outrigger::upstream
