// One worker's pools: reuse, the bounded pending queue for connection slots,
// and waiters that go away while they wait.
#include "outrigger/upstream/connection_pool.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "outrigger/upstream/worker_upstreams.hpp"

namespace outrigger::upstream {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;

// io_context::shutdown is protected: the test needs it to destroy suspended
// coroutines while everything they point at still exists.
struct TestIo : asio::io_context {
  using io_context::io_context;
  void destroy_handlers() { shutdown(); }
};

// (A coroutine's arguments live in its frame; a lambda's captures would not.)
asio::awaitable<void> acquire_into(std::optional<Acquired>& out, ClusterPools& pools, Admission& admission,
                                   std::chrono::milliseconds timeout) {
  out = co_await pools.acquire(0, admission, std::chrono::steady_clock::now() + timeout, nullptr);
}

struct Pools : ::testing::Test {
  TestIo io;
  tcp::acceptor listener{io, {asio::ip::address_v4::loopback(), 0}};  // the kernel completes connects; none is accepted
  observability::Stats stats{1};
  core::DeadlineQueue deadlines{io.get_executor()};
  WorkerUpstreams worker{io.get_executor(), deadlines, 0, 1};
  std::unique_ptr<Cluster> cluster;
  std::shared_ptr<ClusterPools> pools;

  void make(std::uint32_t max_connections, std::uint32_t max_pending) {
    config::Cluster c;
    c.name = "app";
    c.circuit_breakers.max_connections = max_connections;
    c.circuit_breakers.max_pending_requests = max_pending;
    std::vector<Endpoint> endpoints{{"ep", listener.local_endpoint(), 1}};
    cluster = std::make_unique<Cluster>(0, c, endpoints, stats.cluster("app"),
                                        std::make_shared<observability::EndpointSet>(std::vector<std::string>{"ep"}));
    pools = worker.pools_for(*cluster);
  }

  // Starts an acquire; `out` gets its result when it ends.
  void acquire(std::optional<Acquired>& out, std::chrono::milliseconds timeout = 2s) {
    asio::co_spawn(io, acquire_into(out, *pools, cluster->admission(), timeout), asio::detached);
  }
  void run_until(const std::function<bool()>& done) {
    for (int i = 0; i < 2000 && !done(); ++i) {
      if (io.stopped()) io.restart();  // it stops whenever it runs out of work
      io.run_one_for(10ms);
    }
  }
  observability::ClusterLoad& load() { return stats.cluster("app")->load; }
};

TEST_F(Pools, NeverReusesAConnectionLeftMidRequest) {
  make(10, 10);
  std::optional<Acquired> first, second;
  acquire(first);
  run_until([&] { return first.has_value(); });
  ASSERT_TRUE(first->lease);
  EXPECT_FALSE(first->lease.request().reused());
  first->lease = {};  // nothing was sent: not at a message boundary, so it closes
  acquire(second);
  run_until([&] { return second.has_value(); });
  ASSERT_TRUE(second->lease);
  EXPECT_EQ(load().connections.load(), 1);
  EXPECT_EQ(stats.cluster("app")->workers[0].connections_total.value(), 2u);
}

TEST_F(Pools, AWaiterGetsTheSlotFreedFirst) {
  make(1, 10);
  std::optional<Acquired> first, waiting;
  acquire(first);
  run_until([&] { return first.has_value(); });
  ASSERT_TRUE(first->lease);
  acquire(waiting);
  run_until([&] { return load().pending.load() == 1; });
  EXPECT_FALSE(waiting.has_value());
  first->lease = {};  // the slot is free again
  run_until([&] { return waiting.has_value(); });
  ASSERT_TRUE(waiting->lease);
  EXPECT_EQ(load().pending.load(), 0);
  EXPECT_EQ(load().connections.load(), 1);
}

TEST_F(Pools, AWaiterGivesUpAtItsTimeoutAndAFullQueueRefusesAtOnce) {
  make(1, 1);
  std::optional<Acquired> first, waiting, refused;
  acquire(first);
  run_until([&] { return first.has_value(); });
  acquire(waiting, 100ms);
  run_until([&] { return load().pending.load() == 1; });
  acquire(refused);
  run_until([&] { return refused.has_value(); });
  EXPECT_EQ(refused->failure, Acquired::Failure::overflow);  // max_pending_requests: 1
  run_until([&] { return waiting.has_value(); });
  EXPECT_EQ(waiting->failure, Acquired::Failure::overflow);
  EXPECT_EQ(load().pending.load(), 0);
  const auto& s = stats.cluster("app")->workers[0];
  EXPECT_EQ(s.overflow_pending.value(), 1u);
  EXPECT_EQ(s.overflow_connections.value(), 1u);
}

TEST_F(Pools, ShutdownWakesWaitersAndRefusesNewRequests) {
  make(1, 10);
  std::optional<Acquired> first, waiting, late;
  acquire(first);
  run_until([&] { return first.has_value(); });
  acquire(waiting);
  run_until([&] { return load().pending.load() == 1; });
  worker.shutdown();
  run_until([&] { return waiting.has_value(); });
  EXPECT_EQ(waiting->failure, Acquired::Failure::stopped);
  acquire(late);
  run_until([&] { return late.has_value(); });
  EXPECT_EQ(late->failure, Acquired::Failure::stopped);
  EXPECT_EQ(load().pending.load(), 0);
}

TEST_F(Pools, AWaiterWhoseCoroutineIsDestroyedLeavesTheQueue) {
  make(1, 10);
  std::optional<Acquired> first, waiting;
  acquire(first);
  run_until([&] { return first.has_value(); });
  acquire(waiting);
  run_until([&] { return load().pending.load() == 1; });
  // The frame of the waiting coroutine goes (as at a worker's end), its timer
  // and queue entry with it; the pending count is given back.
  io.destroy_handlers();
  EXPECT_EQ(load().pending.load(), 0);
  first->lease = {};  // frees the slot: notifies a queue that must be empty now (ASan watches)
  EXPECT_FALSE(waiting.has_value());
  EXPECT_EQ(load().connections.load(), 0);
}

}  // namespace
}  // namespace outrigger::upstream
