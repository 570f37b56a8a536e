// Config reload without dropping a request, and graceful drain.
#include <gtest/gtest.h>

#include <future>

#include "support/net.hpp"

namespace {

using namespace testing_support;

std::string config(std::uint16_t upstream, const std::string& hello_body, const std::string& address = "127.0.0.1:0") {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 2
log_level: off
drain_timeout: 3s
listeners:
  - name: ingress
    address: {ADDR}
    routes:
      - { name: hello, match: { path: /hello }, direct_response: { status: 200, body: "{HELLO}" } }
      - { name: api, match: { prefix: / }, cluster: app }
clusters:
  - { name: app, endpoints: [127.0.0.1:{UP}] }
)",
              {{"UP", std::to_string(upstream)}, {"HELLO", hello_body}, {"ADDR", address}});
}

// An upstream whose /slow answers after 500 ms.
FakeUpstream::Handler slow_on_demand() {
  return [](FakeUpstream::Exchange& ex) {
    if (ex.request.target() == "/slow") std::this_thread::sleep_for(500ms);
    FakeUpstream::echo(ex);
  };
}

TEST(Reload, NewConfigTakesOverWithoutDroppingInFlightOrKeepAliveRequests) {
  FakeUpstream up(slow_on_demand());
  Proxy proxy(config(up.port(), "old"));
  auto keep_alive = Socket::connect(proxy.port());
  ASSERT_TRUE(keep_alive.send(request_text("GET", "/hello")));
  ASSERT_EQ(keep_alive.read_response()->body(), "old");

  auto in_flight = std::async(std::launch::async, [&] { return http_get(proxy.port(), "/slow"); });
  ASSERT_TRUE(eventually([&] { return up.requests() == 1; }));  // in flight upstream
  EXPECT_TRUE(proxy.server().reload(parse_config(config(up.port(), "new"))).empty());

  auto slow = in_flight.get();
  ASSERT_TRUE(slow);
  EXPECT_EQ(slow->result_int(), 200);
  ASSERT_TRUE(keep_alive.send(request_text("GET", "/hello")));
  auto after = keep_alive.read_response();
  ASSERT_TRUE(after);
  EXPECT_EQ(after->body(), "new");
  EXPECT_EQ(http_get(proxy.port(), "/hello")->body(), "new");
  const auto metrics = http_get(proxy.admin_port(), "/metrics")->body();
  EXPECT_NE(metrics.find("outrigger_config_reloads_total{result=\"success\"} 1"), std::string::npos);
}

TEST(Reload, RejectsAListenerChangeAndKeepsServing) {
  FakeUpstream up;
  Proxy proxy(config(up.port(), "old"));
  const auto errors =
      proxy.server().reload(parse_config(config(up.port(), "new", "127.0.0.1:" + std::to_string(closed_port()))));
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors[0].find("needs a restart"), std::string::npos) << errors[0];
  EXPECT_EQ(http_get(proxy.port(), "/hello")->body(), "old");
  const auto metrics = http_get(proxy.admin_port(), "/metrics")->body();
  EXPECT_NE(metrics.find("outrigger_config_reloads_total{result=\"failure\"} 1"), std::string::npos);
}

TEST(Reload, RejectsAConfigThatDoesNotBuild) {
  FakeUpstream up;
  Proxy proxy(config(up.port(), "old"));
  auto bad = parse_config(config(up.port(), "new"));
  bad.listeners[0].filters.push_back({"no_such_filter", nullptr, {3, 5}});
  const auto errors = proxy.server().reload(std::move(bad));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "test.yaml:3:5: listeners.ingress.filters[0]: unknown filter type 'no_such_filter'");
  EXPECT_EQ(http_get(proxy.port(), "/hello")->body(), "old");
}

TEST(Reload, ARejectedConfigLeavesNoMetricSeriesBehind) {
  FakeUpstream up;
  Proxy proxy(config(up.port(), "old"));
  auto bad = parse_config(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 2
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    filters: [{ type: local_rate_limit, tokens_per_second: 5 }, { type: no_such_filter }]
    routes:
      - { name: brand_new_route, match: { prefix: / }, cluster: brand_new_cluster }
clusters:
  - { name: brand_new_cluster, endpoints: [127.0.0.1:{UP}] }
)",
                               {{"UP", std::to_string(up.port())}}));
  bad.listeners[0].address = parse_config(config(up.port(), "old")).listeners[0].address;
  ASSERT_FALSE(proxy.server().reload(std::move(bad)).empty());
  const auto text = metrics(proxy);
  EXPECT_EQ(text.find("brand_new"), std::string::npos) << text;
  EXPECT_EQ(text.find("outrigger_ratelimit_decisions_total{"), std::string::npos) << text;
  EXPECT_NE(text.find("route=\"hello\""), std::string::npos);  // the serving config's series stay
}

TEST(Drain, FinishesInFlightRequestsWithConnectionCloseThenStops) {
  FakeUpstream up(slow_on_demand());
  Proxy proxy(config(up.port(), "old"));
  const auto port = proxy.port();
  auto s = Socket::connect(port);
  ASSERT_TRUE(s.send(request_text("GET", "/slow")));
  ASSERT_TRUE(eventually([&] { return up.requests() == 1; }));
  const auto start = std::chrono::steady_clock::now();
  auto code = std::async(std::launch::async, [&] { return proxy.drain_and_wait(); });
  auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200);
  EXPECT_EQ((*res)[boost::beast::http::field::connection], "close");
  EXPECT_EQ(code.get(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_FALSE(Socket::connect(port).valid());
}

TEST(Drain, ClosesIdleKeepAliveConnectionsAtOnce) {
  FakeUpstream up;
  Proxy proxy(config(up.port(), "old"));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("GET", "/hello")));
  ASSERT_TRUE(s.read_response());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(proxy.drain_and_wait(), 0);
  EXPECT_TRUE(s.closed_by_peer(1s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

// A sidecar: the pod's inbound listener and the application's outbound one.
std::string sidecar(std::uint16_t upstream, const std::string& drain_timeout = "5s") {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 2
log_level: off
drain_timeout: {DRAIN}
outbound_drain_idle: 300ms
listeners:
  - { name: inbound, address: 127.0.0.1:0, direction: inbound, routes: [{ cluster: app }] }
  - { name: outbound, address: 127.0.0.1:0, direction: outbound, routes: [{ cluster: app }] }
clusters:
  - { name: app, endpoints: [127.0.0.1:{UP}] }
)",
              {{"UP", std::to_string(upstream)}, {"DRAIN", drain_timeout}});
}

// SIGTERM reaches a classic sidecar with its application: the inbound side
// drains at once, the application's outbound calls keep working (a
// keep-alive connection and new ones) until it stops calling out; then the
// proxy ends, well before drain_timeout.
TEST(Drain, ASidecarKeepsServingOutboundCallsUntilTheApplicationIsDone) {
  FakeUpstream up;
  Proxy proxy(sidecar(up.port(), "20s"));
  const auto inbound = proxy.port("inbound"), outbound = proxy.port("outbound");
  auto app = Socket::connect(outbound);
  ASSERT_TRUE(app.send(request_text("GET", "/before")));
  ASSERT_TRUE(app.read_response());
  auto in = Socket::connect(inbound);
  ASSERT_TRUE(in.send(request_text("GET", "/in")));
  ASSERT_TRUE(in.read_response());

  const auto start = std::chrono::steady_clock::now();
  proxy.server().drain();
  EXPECT_TRUE(in.closed_by_peer(2s));  // idle inbound connections close at once
  ASSERT_TRUE(eventually([&] { return !Socket::connect(inbound, 200ms).valid(); }, 3s));
  EXPECT_EQ(http_get(proxy.admin_port(), "/ready")->result_int(), 503);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(app.send(request_text("GET", "/during")));
    auto r = app.read_response();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->result_int(), 200);
    EXPECT_NE((*r)[boost::beast::http::field::connection], "close");  // keep-alive goes on
  }
  auto fresh = http_get(outbound, "/new-call");
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->result_int(), 200);

  app.close();  // the application exits
  EXPECT_EQ(proxy.wait_exit(5s), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

TEST(Drain, ASidecarEndsAtDrainTimeoutWhenTheApplicationKeepsItsConnection) {
  FakeUpstream up;
  Proxy proxy(sidecar(up.port(), "1s"));
  auto app = Socket::connect(proxy.port("outbound"));
  ASSERT_TRUE(app.send(request_text("GET", "/before")));
  ASSERT_TRUE(app.read_response());
  const auto start = std::chrono::steady_clock::now();
  proxy.server().drain();
  EXPECT_EQ(proxy.wait_exit(5s), 0);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 900ms);
  EXPECT_TRUE(app.closed_by_peer(1s));
}

// The application says it is done (a Job's last step): both sides drain now.
TEST(Drain, QuitQuitQuitDrainsASidecarsOutboundSideAtOnce) {
  FakeUpstream up;
  Proxy proxy(sidecar(up.port(), "20s"));
  auto app = Socket::connect(proxy.port("outbound"));
  ASSERT_TRUE(app.send(request_text("GET", "/before")));
  ASSERT_TRUE(app.read_response());
  proxy.server().drain();
  ASSERT_TRUE(app.send(request_text("GET", "/during")));
  ASSERT_TRUE(app.read_response());
  auto q = Socket::connect(proxy.admin_port());
  ASSERT_TRUE(q.send(request_text("POST", "/quitquitquit")));
  EXPECT_TRUE(app.closed_by_peer(3s));
  EXPECT_EQ(proxy.wait_exit(5s), 0);
}

}  // namespace
