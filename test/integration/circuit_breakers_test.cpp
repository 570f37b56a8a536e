// Circuit-breaker thresholds and bulkheads: a cluster at its limits sheds its
// own traffic (503 overflow, counted) and nobody else's.
#include <gtest/gtest.h>

#include <future>

#include "support/net.hpp"

namespace {

using namespace testing_support;

// An upstream that holds every request until released (at most 3 s).
struct StallingUpstream {
  std::atomic<bool> released{false};
  FakeUpstream server{[this](FakeUpstream::Exchange& ex) {
    for (int i = 0; i < 300 && !released; ++i) std::this_thread::sleep_for(10ms);
    FakeUpstream::echo(ex);
  }};
  ~StallingUpstream() { released = true; }
};

std::string config(std::uint16_t slow, std::uint16_t fast, const std::string& breakers,
                   const std::string& connect_timeout = "2s") {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes:
      - { name: slow, match: { prefix: /slow }, cluster: slow, timeout: 10s }
      - { name: fast, match: { prefix: /fast }, cluster: fast }
clusters:
  - name: slow
    endpoints: [127.0.0.1:{SLOW}]
    connect_timeout: {CT}
    circuit_breakers: {BREAKERS}
  - { name: fast, endpoints: [127.0.0.1:{FAST}] }
)",
              {{"SLOW", std::to_string(slow)}, {"FAST", std::to_string(fast)}, {"BREAKERS", breakers}, {"CT", connect_timeout}});
}

std::future<std::optional<Response>> get_async(std::uint16_t port, std::string target) {
  return std::async(std::launch::async, [port, target] { return http_get(port, target); });
}

TEST(CircuitBreakers, MaxRequestsOverflowsWithExactCounts) {
  StallingUpstream slow;
  FakeUpstream fast;
  Proxy proxy(config(slow.server.port(), fast.port(), "{ max_requests: 2 }"));
  auto a = get_async(proxy.port(), "/slow/a");
  auto b = get_async(proxy.port(), "/slow/b");
  ASSERT_TRUE(eventually([&] { return slow.server.requests() == 2; }));
  for (int i = 0; i < 3; ++i) {
    auto res = http_get(proxy.port(), "/slow/over");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 503);
    EXPECT_EQ((*res)["x-outrigger-error"], "overflow");
  }
  EXPECT_TRUE(has(metrics(proxy), "outrigger_upstream_requests_active{cluster=\"slow\"} 2"));
  slow.released = true;
  EXPECT_EQ(a.get()->result_int(), 200);
  EXPECT_EQ(b.get()->result_int(), 200);
  EXPECT_EQ(slow.server.requests(), 2);
  const auto text = metrics(proxy);
  EXPECT_TRUE(has(text, "outrigger_upstream_overflow_total{cluster=\"slow\",limit=\"max_requests\"} 3")) << text;
  EXPECT_TRUE(has(text, "outrigger_upstream_overflow_total{cluster=\"fast\",limit=\"max_requests\"} 0"));
}

TEST(CircuitBreakers, PendingRequestsWaitForAConnectionAndTheQueueIsBounded) {
  StallingUpstream slow;
  FakeUpstream fast;
  Proxy proxy(config(slow.server.port(), fast.port(), "{ max_connections: 1, max_pending_requests: 1 }"));
  auto first = get_async(proxy.port(), "/slow/1");
  ASSERT_TRUE(eventually([&] { return slow.server.requests() == 1; }));
  auto queued = get_async(proxy.port(), "/slow/2");
  ASSERT_TRUE(eventually([&] { return has(metrics(proxy), "outrigger_upstream_requests_pending{cluster=\"slow\"} 1"); }));
  auto refused = http_get(proxy.port(), "/slow/3");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->result_int(), 503);
  EXPECT_EQ((*refused)["x-outrigger-error"], "overflow");
  slow.released = true;
  EXPECT_EQ(first.get()->result_int(), 200);
  EXPECT_EQ(queued.get()->result_int(), 200);  // took the first request's connection
  EXPECT_EQ(slow.server.connections(), 1);
  const auto text = metrics(proxy);
  EXPECT_TRUE(has(text, "outrigger_upstream_overflow_total{cluster=\"slow\",limit=\"max_pending_requests\"} 1"));
  EXPECT_TRUE(has(text, "outrigger_upstream_requests_pending{cluster=\"slow\"} 0"));
}

TEST(CircuitBreakers, APendingRequestGivesUpAfterTheConnectTimeout) {
  StallingUpstream slow;
  FakeUpstream fast;
  Proxy proxy(config(slow.server.port(), fast.port(), "{ max_connections: 1 }", "300ms"));
  auto first = get_async(proxy.port(), "/slow/1");
  ASSERT_TRUE(eventually([&] { return slow.server.requests() == 1; }));
  const auto start = std::chrono::steady_clock::now();
  auto waited = http_get(proxy.port(), "/slow/2");
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(waited);
  EXPECT_EQ(waited->result_int(), 503);
  EXPECT_EQ((*waited)["x-outrigger-error"], "overflow");
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 2s);
  slow.released = true;
  EXPECT_EQ(first.get()->result_int(), 200);
  EXPECT_TRUE(has(metrics(proxy), "outrigger_upstream_overflow_total{cluster=\"slow\",limit=\"max_connections\"} 1"));
}

TEST(CircuitBreakers, AClusterAtItsLimitsDoesNotSlowAnotherCluster) {
  StallingUpstream slow;
  FakeUpstream fast;
  Proxy proxy(config(slow.server.port(), fast.port(), "{ max_connections: 2, max_pending_requests: 2, max_requests: 4 }"));
  std::vector<std::future<std::optional<Response>>> stuck;
  for (int i = 0; i < 4; ++i) stuck.push_back(get_async(proxy.port(), "/slow/" + std::to_string(i)));
  ASSERT_TRUE(eventually([&] { return slow.server.requests() == 2; }));
  ASSERT_TRUE(eventually([&] { return has(metrics(proxy), "outrigger_upstream_requests_pending{cluster=\"slow\"} 2"); }));
  // The slow cluster is full (2 in flight, 2 queued); the fast one must not notice.
  auto s = Socket::connect(proxy.port());
  auto worst = std::chrono::steady_clock::duration::zero();
  for (int i = 0; i < 50; ++i) {
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(s.send(request_text("GET", "/fast/x")));
    auto res = s.read_response();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 200);
    worst = std::max(worst, std::chrono::steady_clock::now() - start);
  }
  EXPECT_LT(worst, 250ms);  // the slow cluster's requests are held for up to 3 s
  auto over = http_get(proxy.port(), "/slow/over");
  EXPECT_EQ(over->result_int(), 503);
  slow.released = true;
  for (auto& f : stuck) EXPECT_EQ(f.get()->result_int(), 200);
}

}  // namespace
