// Memory that follows load: after a burst through the proxy, the pools give
// back what it left (the sweeps' gauges and counters), the idle upstream
// connections it opened are purged, and the main thread trims glibc's arenas.
// RSS is not tested here (ASan has its own allocator); test/bench/memory_burst.py
// measures it.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <thread>
#include <string>
#include <vector>

#include "support/net.hpp"

namespace {

using namespace testing_support;

// The value of one series (an exact label set), or -1 when it is absent.
double value_of(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::strtod(text.c_str() + at + series.size() + 2, nullptr);
}

TEST(Memory, PoolsGiveBackWhatABurstLeftOnceItIsOver) {
  constexpr int kConcurrent = 48;
  const std::string body(40 * 1024, 'b');
  // Every request is held upstream until all of them are in flight, so that
  // the proxy holds the buffers of all of them at once.
  FakeUpstream up;
  up.set_handler([&](FakeUpstream::Exchange& ex) {
    eventually([&] { return up.requests() >= kConcurrent; }, 10s);
    FakeUpstream::reply(ex, 200, body);
  });
  Proxy proxy(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes:
      - { cluster: app, timeout: 15s }
clusters:
  - { name: app, endpoints: [127.0.0.1:{UP}] }
)",
                   {{"UP", std::to_string(up.port())}}));

  std::vector<Socket> clients;
  for (int i = 0; i < kConcurrent; ++i) {
    clients.push_back(Socket::connect(proxy.port()));
    ASSERT_TRUE(clients.back().send(request_text("POST", "/upload", {{"Host", "app"}}, body)));
  }
  for (auto& c : clients) {
    auto res = c.read_response(10s);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 200);
    EXPECT_EQ(res->body().size(), body.size());
  }
  clients.clear();

  // Quiet now: within two worker sweeps (a second apart) the buffers no
  // request took go back, and within a main-thread sweep (5 s) glibc is
  // trimmed. Without the sweeps the free list keeps up to 64 blocks (1 MB).
  std::string text;
  EXPECT_TRUE(eventually(
      [&] {
        text = metrics(proxy);
        return value_of(text, "outrigger_pool_free_bytes{pool=\"buffers\"}") == 0 &&
               value_of(text, "outrigger_malloc_trims_total") >= 1;
      },
      15s))
      << text;
  EXPECT_GE(value_of(text, "outrigger_pool_released_bytes_total{pool=\"buffers\"}"), kConcurrent * 16 * 1024.0)
      << text;
  // Header-field blocks: what a scrape itself uses may stay, no more.
  EXPECT_LE(value_of(text, "outrigger_pool_free_bytes{pool=\"small\"}"), 64 * 1024.0) << text;
  EXPECT_GT(value_of(text, "outrigger_pool_released_bytes_total{pool=\"small\"}"), 0) << text;

  // The burst's upstream connections: every 5 s the pool closes half of those
  // no request took since the last purge (48, then 24, 12, ...), not all of
  // them 60 s later (connection_pool.idle_timeout), and glibc is trimmed again.
  const auto trims = value_of(text, "outrigger_malloc_trims_total");
  EXPECT_TRUE(eventually(
      [&] {
        text = metrics(proxy);
        return value_of(text, "outrigger_upstream_idle_purged_total") >= kConcurrent / 2 &&
               value_of(text, "outrigger_malloc_trims_total") > trims;
      },
      30s))  // up to two purge intervals, then a trim sweep: about 15 s
      << text;
  EXPECT_LE(value_of(text, "outrigger_upstream_connections_active{cluster=\"app\"}"), kConcurrent / 2) << text;
  EXPECT_GE(value_of(text, "outrigger_upstream_connections_active{cluster=\"app\"}"), 1) << text;
}

// The purge takes back what a burst opened, not what a load uses: a steady
// load, one request at a time, takes the connection on top of the idle stack
// each time, and the purges close the unused ones under it. No request opens
// a connection, and the one in use survives every purge.
TEST(Memory, ASteadyLoadKeepsTheUpstreamConnectionItUsesThroughPurges) {
  constexpr int kBurst = 6;
  FakeUpstream up;
  std::atomic<bool> hold{true};
  up.set_handler([&](FakeUpstream::Exchange& ex) {
    if (hold) eventually([&] { return up.requests() >= kBurst; }, 10s);
    FakeUpstream::reply(ex, 200, "ok");
  });
  Proxy proxy(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes:
      - { cluster: app, timeout: 15s }
clusters:
  - { name: app, endpoints: [127.0.0.1:{UP}] }
)",
                   {{"UP", std::to_string(up.port())}}));
  {
    std::vector<Socket> clients;
    for (int i = 0; i < kBurst; ++i) {
      clients.push_back(Socket::connect(proxy.port()));
      ASSERT_TRUE(clients.back().send(request_text("GET", "/", {{"Host", "app"}})));
    }
    for (auto& c : clients) {
      auto res = c.read_response(10s);
      ASSERT_TRUE(res);
      EXPECT_EQ(res->result_int(), 200);
    }
  }
  hold = false;
  ASSERT_EQ(up.connections(), kBurst);

  // One request every 100 ms on one client connection, until two purges
  // (5 s apart) have closed some of the burst's connections.
  auto client = Socket::connect(proxy.port());
  int sent = 0;
  double purged = 0;
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (purged < 2 && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(client.send(request_text("GET", "/", {{"Host", "app"}})));
    auto res = client.read_response(5s);
    ASSERT_TRUE(res) << "after " << sent << " requests";
    ASSERT_EQ(res->result_int(), 200);
    ++sent;
    std::this_thread::sleep_for(100ms);  // the load's pace, not a wait for an event
    if (sent % 10 == 0) {
      text = metrics(proxy);
      purged = value_of(text, "outrigger_upstream_idle_purged_total");
    }
  }
  ASSERT_GE(purged, 2) << "requests answered: " << sent << "\n" << text;
  EXPECT_EQ(up.connections(), kBurst) << "a request of the steady load opened a connection";
  EXPECT_EQ(up.requests(), kBurst + sent);
  // One scrape reads the purge counter and the connection gauge at two
  // moments: a sweep between the two shows the purge before its closes.
  EXPECT_TRUE(eventually(
      [&] {
        text = metrics(proxy);
        return value_of(text, "outrigger_upstream_connections_active{cluster=\"app\"}") <= kBurst - 2;
      },
      5s))
      << text;
  EXPECT_GE(value_of(text, "outrigger_upstream_connections_active{cluster=\"app\"}"), 1) << text;
}

}  // namespace
