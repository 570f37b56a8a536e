// Many deadlines on one timer: each cancels its socket when it passes.
#include "outrigger/core/deadline_queue.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

namespace outrigger::core {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A connected loopback pair; `near` is the side the deadlines guard.
struct Pair {
  explicit Pair(asio::io_context& io) : near(io), far(io) {
    tcp::acceptor a(io, {asio::ip::address_v4::loopback(), 0});
    near.connect(a.local_endpoint());
    far = a.accept();
  }
  tcp::socket near, far;
};

// A read on the socket that records when and how it ended.
struct Read {
  Read(tcp::socket& s) {
    s.async_read_some(asio::buffer(buf), [this](boost::system::error_code e, std::size_t) {
      ec = e;
      at = Clock::now();
      done = true;
    });
  }
  char buf[16];
  boost::system::error_code ec;
  Clock::time_point at;
  bool done = false;
};

TEST(DeadlineQueue, CancelsTheGuardedSocketWhenTheDeadlinePasses) {
  asio::io_context io;
  DeadlineQueue q(io.get_executor());
  Pair p(io);
  Deadline d(q);
  const auto start = Clock::now();
  d.arm(start + 50ms, &p.near);
  Read r(p.near);
  io.run_for(2s);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.ec, asio::error::operation_aborted);
  EXPECT_GE(r.at - start, 50ms);
  EXPECT_TRUE(d.expired());
  EXPECT_FALSE(d.armed());
}

TEST(DeadlineQueue, FiresEachAtItsTimeAndNeverADisarmedOne) {
  asio::io_context io;
  DeadlineQueue q(io.get_executor());
  Pair a(io), b(io), c(io);
  Deadline da(q), db(q), dc(q);
  const auto start = Clock::now();
  da.arm(start + 80ms, &a.near);
  db.arm(start + 20ms, &b.near);  // the earliest, but disarmed below
  dc.arm(start + 40ms, &c.near);
  db.disarm();
  Read ra(a.near), rb(b.near), rc(c.near);
  asio::steady_timer stop(io, start + 300ms);
  stop.async_wait([&](auto) { b.near.cancel(); });
  io.run_for(2s);
  EXPECT_TRUE(rc.done && ra.done && rb.done);
  EXPECT_GE(rc.at - start, 40ms);
  EXPECT_GE(ra.at - start, 80ms);
  EXPECT_LT(rc.at, ra.at);
  EXPECT_GE(rb.at - start, 300ms);  // only the test's own cancel ended it
  EXPECT_FALSE(db.expired());
  EXPECT_EQ(q.size(), 0u);  // the disarmed one was dropped when the queue reached it
}

TEST(DeadlineQueue, ADeadlineMovedLaterStaysQueuedWhereItWas) {
  asio::io_context io;
  DeadlineQueue q(io.get_executor());
  Pair p(io);
  Deadline d(q);
  const auto start = Clock::now();
  for (int i = 1; i <= 100; ++i) d.arm(start + 50ms + std::chrono::milliseconds(i), &p.near);  // as per request
  EXPECT_EQ(q.size(), 1u);
  Read r(p.near);
  io.run_for(2s);
  ASSERT_TRUE(r.done);
  EXPECT_GE(r.at - start, 150ms);  // the last arming counts, not the first
  EXPECT_EQ(q.size(), 0u);
}

TEST(DeadlineQueue, MovesADeadlineLaterOrEarlier) {
  asio::io_context io;
  DeadlineQueue q(io.get_executor());
  Pair a(io), b(io);
  Deadline later(q), earlier(q);
  const auto start = Clock::now();
  later.arm(start + 20ms, &a.near);
  later.arm(start + 120ms, &a.near);  // moved later: the timer may wake early and wait again
  earlier.arm(start + 200ms, &b.near);
  earlier.arm(start + 60ms, &b.near);  // moved earlier than the pending wait
  Read ra(a.near), rb(b.near);
  io.run_for(2s);
  ASSERT_TRUE(ra.done && rb.done);
  EXPECT_GE(ra.at - start, 120ms);
  EXPECT_GE(rb.at - start, 60ms);
  EXPECT_LT(rb.at - start, 190ms);
}

TEST(DeadlineQueue, AfterShutdownNothingFiresAndNoWorkIsLeft) {
  asio::io_context io;
  DeadlineQueue q(io.get_executor());
  Pair p(io);
  Deadline d(q);
  d.arm(Clock::now() + 30ms, &p.near);
  q.shutdown();
  d.arm(Clock::now() + 10ms, &p.near);  // a coroutine unwinding may still arm one
  const auto start = Clock::now();
  io.run_for(2s);  // returns as soon as there is no work: no pending wait
  EXPECT_LT(Clock::now() - start, 1s);
  EXPECT_FALSE(d.expired());
}

TEST(DeadlineQueue, ItsPendingWaitMayOutliveIt) {
  asio::io_context io;
  Pair p(io);
  {
    DeadlineQueue q(io.get_executor());
    Deadline d(q);
    d.arm(Clock::now() + 10ms, &p.near);
  }  // the wait is cancelled and completes later, with nothing left to touch
  io.run_for(200ms);
  SUCCEED();
}

}  // namespace
}  // namespace outrigger::core
