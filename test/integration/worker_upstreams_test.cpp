// Upstream connections belong to the worker that uses them: a reload that
// changes a cluster's endpoints closes each worker's old connections on that
// worker, the gauges follow the real sockets, and shutting down with
// requests still queued for a connection ends cleanly.
#include <gtest/gtest.h>

#include <future>

#include "support/net.hpp"

namespace {

using namespace testing_support;

std::string config_for(std::uint16_t upstream, const std::string& breakers = "") {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 2
log_level: off
drain_timeout: 100ms
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes:
      - { name: api, match: { prefix: / }, cluster: app, timeout: 10s }
clusters:
  - name: app
    endpoints: [127.0.0.1:{UP}]
{BREAKERS}
)",
              {{"UP", std::to_string(upstream)}, {"BREAKERS", breakers}});
}

// The cluster's outrigger_upstream_connections_active, -1 when absent.
long active_gauge(Proxy& proxy) {
  const auto text = metrics(proxy);
  const std::string key = "outrigger_upstream_connections_active{cluster=\"app\"} ";
  const auto at = text.find(key);
  return at == std::string::npos ? -1 : std::stol(text.substr(at + key.size()));
}

// Requests on `n` client connections at once, so that both workers take some
// and each opens upstream connections of its own.
void busy_clients(Proxy& proxy, int n) {
  std::vector<std::future<std::optional<Response>>> all;
  for (int i = 0; i < n; ++i) all.push_back(std::async(std::launch::async, [&] { return http_get(proxy.port(), "/x"); }));
  for (auto& f : all) ASSERT_TRUE(f.get());
}

TEST(WorkerUpstreams, AReloadThatChangesEndpointsLeavesTheGaugeEqualToTheSockets) {
  // The upstream holds each request a moment, so that concurrent requests
  // need several connections (and reach both workers).
  auto slow = [](FakeUpstream::Exchange& ex) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the upstream's work, not a wait for an event
    FakeUpstream::echo(ex);
  };
  FakeUpstream a(slow), b(slow);
  Proxy proxy(config_for(a.port()));
  busy_clients(proxy, 16);
  ASSERT_TRUE(eventually([&] { return a.open_connections() >= 2 && active_gauge(proxy) == a.open_connections(); }))
      << "gauge " << active_gauge(proxy) << ", sockets " << a.open_connections();

  // New endpoints: every worker drops its idle connections to `a`, on its own thread.
  ASSERT_TRUE(proxy.server().reload(parse_config(config_for(b.port()))).empty());
  EXPECT_TRUE(eventually([&] { return a.open_connections() == 0 && active_gauge(proxy) == 0; }))
      << "gauge " << active_gauge(proxy) << ", sockets to a " << a.open_connections();

  busy_clients(proxy, 16);
  EXPECT_TRUE(eventually([&] { return b.open_connections() >= 1 && active_gauge(proxy) == b.open_connections(); }))
      << "gauge " << active_gauge(proxy) << ", sockets " << b.open_connections();
  EXPECT_EQ(a.open_connections(), 0);
}

TEST(WorkerUpstreams, AReloadThatKeepsEndpointsKeepsTheConnections) {
  FakeUpstream up;
  Proxy proxy(config_for(up.port()));
  auto s = Socket::connect(proxy.port());  // one client connection: one worker
  auto get = [&] { return s.send(request_text("GET", "/x")) && s.read_response(); };
  ASSERT_TRUE(get() && get());
  ASSERT_EQ(up.connections(), 1);
  ASSERT_TRUE(proxy.server().reload(parse_config(config_for(up.port()))).empty());
  ASSERT_TRUE(get() && get());  // the new config's pipeline took this worker's pools over
  EXPECT_EQ(up.connections(), 1);
  EXPECT_EQ(up.open_connections(), 1);
}

TEST(WorkerUpstreams, DrainingWithRequestsQueuedForAConnectionEndsCleanly) {
  std::atomic<bool> release{false};
  FakeUpstream up([&](FakeUpstream::Exchange& ex) {
    for (int i = 0; i < 300 && !release; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    FakeUpstream::echo(ex);
  });
  auto proxy = std::make_unique<Proxy>(config_for(
      up.port(), "    connect_timeout: 5s\n    circuit_breakers: { max_connections: 1, max_pending_requests: 10 }"));
  std::vector<std::future<std::optional<Response>>> clients;
  for (int i = 0; i < 4; ++i)
    clients.push_back(std::async(std::launch::async, [&] { return http_get(proxy->port(), "/q"); }));
  // One request holds the only connection; the others wait in the queue.
  ASSERT_TRUE(eventually([&] {
    return up.requests() == 1 && has(metrics(*proxy), "outrigger_upstream_requests_pending{cluster=\"app\"} 3");
  })) << metrics(*proxy);
  // drain_timeout (100 ms) passes with all four in flight: the workers close
  // everything, wake the queue, and every coroutine ends (ASan watches).
  EXPECT_EQ(proxy->drain_and_wait(), 0);
  release = true;
  for (auto& c : clients) c.get();
  proxy.reset();
}

}  // namespace
