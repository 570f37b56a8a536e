// Load balancing and traffic splitting as a client and the upstreams see them.
#include <gtest/gtest.h>

#include <future>

#include "support/net.hpp"

namespace {

using namespace testing_support;

TEST(LoadBalancing, WeightedClustersSplitTrafficWithinFivePercent) {
  FakeUpstream v1, v2;
  Proxy proxy(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 2
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes:
      - name: split
        weighted_clusters: [{ cluster: v1, weight: 90 }, { cluster: v2, weight: 10 }]
clusters:
  - { name: v1, endpoints: [127.0.0.1:{V1}] }
  - { name: v2, endpoints: [127.0.0.1:{V2}] }
)",
                   {{"V1", std::to_string(v1.port())}, {"V2", std::to_string(v2.port())}}));
  auto s = Socket::connect(proxy.port());
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(s.send(request_text("GET", "/x")));
    ASSERT_TRUE(s.read_response()) << i;
  }
  EXPECT_EQ(v1.requests() + v2.requests(), 2000);
  EXPECT_NEAR(v2.requests(), 200, 100);  // 10% of 2,000, within ±5% of all requests
  // The last response reaches the client just before its worker counts it, so
  // wait until both series have caught up (bounded: 100 scrapes).
  const std::string want_v1 = "route=\"split\",cluster=\"v1\",code=\"200\"} " + std::to_string(v1.requests());
  const std::string want_v2 = "route=\"split\",cluster=\"v2\",code=\"200\"} " + std::to_string(v2.requests());
  std::string metrics;
  for (int i = 0; i < 100; ++i) {
    metrics = http_get(proxy.admin_port(), "/metrics")->body();
    if (metrics.find(want_v1) != std::string::npos && metrics.find(want_v2) != std::string::npos) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_NE(metrics.find(want_v1), std::string::npos);
  EXPECT_NE(metrics.find(want_v2), std::string::npos);
}

TEST(LoadBalancing, RoundRobinFollowsEndpointWeights) {
  FakeUpstream heavy, light;
  Proxy proxy(fill(R"(
admin: { enabled: false }
workers: 1
log_level: off
listeners:
  - { name: ingress, address: 127.0.0.1:0, routes: [{ cluster: app }] }
clusters:
  - name: app
    endpoints: [{ address: 127.0.0.1:{H}, weight: 3 }, { address: 127.0.0.1:{L}, weight: 1 }]
)",
                   {{"H", std::to_string(heavy.port())}, {"L", std::to_string(light.port())}}));
  auto s = Socket::connect(proxy.port());
  for (int i = 0; i < 400; ++i) {
    ASSERT_TRUE(s.send(request_text("GET", "/x")));
    ASSERT_TRUE(s.read_response());
  }
  EXPECT_EQ(heavy.requests(), 300);
  EXPECT_EQ(light.requests(), 100);
}

TEST(LoadBalancing, LeastRequestPrefersTheFastEndpoint) {
  FakeUpstream fast;
  FakeUpstream slow([](FakeUpstream::Exchange& ex) {
    std::this_thread::sleep_for(50ms);
    FakeUpstream::echo(ex);
  });
  Proxy proxy(fill(R"(
admin: { enabled: false }
workers: 1
log_level: off
listeners:
  - { name: ingress, address: 127.0.0.1:0, routes: [{ cluster: app }] }
clusters:
  - { name: app, lb_policy: least_request, endpoints: [127.0.0.1:{F}, 127.0.0.1:{S}] }
)",
                   {{"F", std::to_string(fast.port())}, {"S", std::to_string(slow.port())}}));
  // 8 clients at once, 25 requests each: while the slow endpoint holds
  // requests, new ones go to the fast one.
  std::vector<std::future<int>> clients;
  for (int c = 0; c < 8; ++c) {
    clients.push_back(std::async(std::launch::async, [&] {
      auto s = Socket::connect(proxy.port());
      int ok = 0;
      for (int i = 0; i < 25; ++i) ok += s.send(request_text("GET", "/x")) && s.read_response(5s) ? 1 : 0;
      return ok;
    }));
  }
  int ok = 0;
  for (auto& c : clients) ok += c.get();
  EXPECT_EQ(ok, 200);
  EXPECT_GT(fast.requests(), 150) << "fast " << fast.requests() << ", slow " << slow.requests();
}

TEST(LoadBalancing, RandomUsesEveryEndpoint) {
  FakeUpstream a, b;
  Proxy proxy(fill(R"(
admin: { enabled: false }
workers: 1
log_level: off
listeners:
  - { name: ingress, address: 127.0.0.1:0, routes: [{ cluster: app }] }
clusters:
  - { name: app, lb_policy: random, endpoints: [127.0.0.1:{A}, 127.0.0.1:{B}] }
)",
                   {{"A", std::to_string(a.port())}, {"B", std::to_string(b.port())}}));
  auto s = Socket::connect(proxy.port());
  for (int i = 0; i < 400; ++i) {
    ASSERT_TRUE(s.send(request_text("GET", "/x")));
    ASSERT_TRUE(s.read_response());
  }
  EXPECT_NEAR(a.requests(), 200, 60);
  EXPECT_EQ(a.requests() + b.requests(), 400);
}

}  // namespace
