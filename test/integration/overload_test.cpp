// Overload limits: past max_downstream_connections a connection is closed at
// once (a FIN, nothing read, counted), past max_requests_per_worker a request
// is answered 503 overload at once (HTTP/1.1 and HTTP/2 streams alike); the
// admin listener is never limited, and the proxy takes new work again as
// soon as the load is back under the limits.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <future>

#include "support/h2.hpp"
#include "support/net.hpp"

namespace {

using namespace testing_support;
using Clock = std::chrono::steady_clock;

// An upstream that holds every request until released (at most 10 s).
struct HoldingUpstream {
  std::atomic<bool> released{false};
  FakeUpstream server{[this](FakeUpstream::Exchange& ex) {
    for (int i = 0; i < 1000 && !released; ++i) std::this_thread::sleep_for(10ms);
    FakeUpstream::echo(ex);
  }};
  ~HoldingUpstream() { released = true; }
};

std::string config(std::uint16_t upstream, const std::string& overload, unsigned workers = 1,
                   const std::string& listener_extra = "") {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: {WORKERS}
log_level: off
overload: {OVERLOAD}
listeners:
  - name: ingress
    address: 127.0.0.1:0
    {EXTRA}
    routes:
      - { match: { prefix: / }, cluster: app, timeout: 20s }
clusters:
  - { name: app, endpoints: [127.0.0.1:{PORT}] }
)",
              {{"PORT", std::to_string(upstream)},
               {"OVERLOAD", overload},
               {"WORKERS", std::to_string(workers)},
               {"EXTRA", listener_extra}});
}

// What the peer did to a connection we have not written to: "eof" (a FIN),
// "reset", "data" or "open" (nothing within the deadline).
std::string peer_end(const Socket& s, std::chrono::milliseconds timeout = 3s) {
  pollfd p{s.fd(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return "open";
  char c;
  const auto n = ::recv(s.fd(), &c, 1, 0);
  if (n == 0) return "eof";
  if (n < 0 && errno == ECONNRESET) return "reset";
  return n > 0 ? "data" : "error";
}

// One series' line of the proxy's /metrics ("" when absent).
std::string metric_line(Proxy& proxy, const std::string& series) {
  const auto text = metrics(proxy);
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return "";
  return text.substr(at + 1, text.find('\n', at + 1) - at - 1);
}

// A GET that may wait for the held upstream (longer than http_get's 3 s).
std::optional<Response> held_get(std::uint16_t port, const std::string& target) {
  auto s = Socket::connect(port);
  if (!s.valid() || !s.send(request_text("GET", target))) return std::nullopt;
  return s.read_response(15s);
}

bool metric_is(Proxy& proxy, const std::string& series, const std::string& value) {
  return metric_line(proxy, series) == series + " " + value;
}

const std::string kRefusedProcess =
    "outrigger_downstream_connections_refused_total{direction=\"inbound\",listener=\"ingress\",reason=\"max_"
    "downstream_connections\"}";
const std::string kRefusedListener =
    "outrigger_downstream_connections_refused_total{direction=\"inbound\",listener=\"ingress\",reason=\"max_"
    "connections\"}";
const std::string kShed =
    "outrigger_overload_shed_requests_total{direction=\"inbound\",listener=\"ingress\",reason=\"max_requests_per_"
    "worker\"}";
const std::string kInFlight = "outrigger_overload_requests_in_flight{worker=\"0\"}";

TEST(Overload, AConnectionFloodIsRefusedAtMaxDownstreamConnectionsAndRecovers) {
  FakeUpstream app;
  // Two workers: the limit is the process's, whichever worker accepts.
  Proxy proxy(config(app.port(), "{ max_downstream_connections: 4 }", 2));
  std::vector<Socket> idle;
  for (int i = 0; i < 4; ++i) idle.push_back(Socket::connect(proxy.port()));
  ASSERT_TRUE(eventually([&] { return metric_is(proxy, "outrigger_overload_downstream_connections", "4"); }));

  for (int i = 1; i <= 3; ++i) {
    auto over = Socket::connect(proxy.port());
    ASSERT_TRUE(over.valid());
    EXPECT_EQ(peer_end(over), "eof");  // closed unread, without a response and without a reset
    ASSERT_TRUE(eventually([&] { return metric_is(proxy, kRefusedProcess, std::to_string(i)); }))
        << metric_line(proxy, kRefusedProcess);
  }
  EXPECT_TRUE(metric_is(proxy, "outrigger_overload_max_downstream_connections", "4"));

  // The admin listener is not limited, and neither are the open connections.
  auto ready = http_get(proxy.admin_port(), "/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->result_int(), 200);
  auto stats = http_get(proxy.admin_port(), "/stats/prometheus");
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->result_int(), 200);
  ASSERT_TRUE(idle[0].send(request_text("GET", "/on-an-admitted-connection")));
  auto res = idle[0].read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200);
  EXPECT_EQ(app.requests(), 1);  // the refused connections never reached anything

  // Room again: new connections are served.
  idle[1].close();
  idle[2].close();
  ASSERT_TRUE(eventually([&] { return metric_is(proxy, "outrigger_overload_downstream_connections", "2"); }));
  auto again = http_get(proxy.port(), "/after");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->result_int(), 200);
}

TEST(Overload, AListenerRefusesConnectionsPastItsOwnMaxConnections) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), "{}", 1, "max_connections: 2"));
  auto a = Socket::connect(proxy.port());
  auto b = Socket::connect(proxy.port());
  ASSERT_TRUE(eventually([&] { return metric_is(proxy, "outrigger_overload_downstream_connections", "2"); }));
  auto over = Socket::connect(proxy.port());
  EXPECT_EQ(peer_end(over), "eof");
  ASSERT_TRUE(eventually([&] { return metric_is(proxy, kRefusedListener, "1"); }));
  EXPECT_TRUE(metric_is(proxy, kRefusedProcess, "0"));
  a.close();
  ASSERT_TRUE(eventually([&] { return metric_is(proxy, "outrigger_overload_downstream_connections", "1"); }));
  auto res = http_get(proxy.port(), "/after");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200);
}

TEST(Overload, AConnectionUnderTheLimitsIsNotRefused) {
  // Without the limit the same flood is served: the refusal above is the limit's.
  FakeUpstream app;
  Proxy proxy(config(app.port(), "{ max_downstream_connections: 0 }", 2));
  std::vector<Socket> idle;
  for (int i = 0; i < 8; ++i) idle.push_back(Socket::connect(proxy.port()));
  ASSERT_TRUE(eventually([&] { return metric_is(proxy, "outrigger_overload_downstream_connections", "8"); }));
  auto res = http_get(proxy.port(), "/ninth");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200);
  EXPECT_TRUE(metric_is(proxy, kRefusedProcess, "0"));
}

TEST(Overload, ARequestPastMaxRequestsPerWorkerIsShedAtOnceOverHttp1) {
  HoldingUpstream app;
  Proxy proxy(config(app.server.port(), "{ max_requests_per_worker: 1 }"));
  auto held = std::async(std::launch::async, [&] { return held_get(proxy.port(), "/held"); });
  ASSERT_TRUE(eventually([&] { return app.server.requests() == 1; }));

  const auto start = Clock::now();
  auto shed = http_get(proxy.port(), "/second");
  const auto took = Clock::now() - start;
  ASSERT_TRUE(shed);
  EXPECT_EQ(shed->result_int(), 503);
  EXPECT_EQ((*shed)["x-outrigger-error"], "overload");
  EXPECT_LT(took, 1s);  // the held request takes up to 10 s
  EXPECT_EQ(app.server.requests(), 1);  // nothing went upstream
  EXPECT_TRUE(metric_is(proxy, kShed, "1"));
  EXPECT_TRUE(metric_is(proxy, kInFlight, "1"));

  app.released = true;
  auto first = held.get();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->result_int(), 200);
  ASSERT_TRUE(eventually([&] { return metric_is(proxy, kInFlight, "0"); }));
  auto next = http_get(proxy.port(), "/next");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->result_int(), 200);
  EXPECT_TRUE(metric_is(proxy, kShed, "1"));
}

TEST(Overload, AStreamPastMaxRequestsPerWorkerIsShedAndTheSessionStaysUpOverHttp2) {
  HoldingUpstream app;
  Proxy proxy(config(app.server.port(), "{ max_requests_per_worker: 1 }"));
  H2Client client(proxy.port());
  ASSERT_TRUE(client.connected());
  const auto held = client.submit("GET", "/held");
  ASSERT_TRUE(client.run_until([&] { return app.server.requests() == 1; }));

  const auto start = Clock::now();
  const auto second = client.submit("GET", "/second");
  auto shed = client.wait(second);
  const auto took = Clock::now() - start;
  ASSERT_TRUE(shed);
  EXPECT_EQ(shed->status, 503);
  EXPECT_EQ(shed->header("x-outrigger-error"), "overload");
  EXPECT_FALSE(shed->was_reset);
  EXPECT_LT(took, 1s);
  EXPECT_EQ(app.server.requests(), 1);
  EXPECT_TRUE(metric_is(proxy, kShed, "1"));

  app.released = true;
  auto first = client.wait(held);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  ASSERT_TRUE(eventually([&] { return metric_is(proxy, kInFlight, "0"); }));
  auto next = client.get("/next");  // the same session
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200);
  EXPECT_FALSE(client.goaway().has_value());
  EXPECT_FALSE(client.closed());
}

TEST(Overload, AReloadTakesTheNewLimits) {
  HoldingUpstream app;
  Proxy proxy(config(app.server.port(), "{ max_requests_per_worker: 1 }"));
  auto held = std::async(std::launch::async, [&] { return held_get(proxy.port(), "/held"); });
  ASSERT_TRUE(eventually([&] { return app.server.requests() == 1; }));
  auto shed = http_get(proxy.port(), "/shed");
  ASSERT_TRUE(shed);
  EXPECT_EQ(shed->result_int(), 503);

  ASSERT_TRUE(proxy.server().reload(parse_config(config(app.server.port(), "{ max_requests_per_worker: 2 }"))).empty());
  EXPECT_TRUE(metric_is(proxy, "outrigger_overload_max_requests_per_worker", "2"));
  // The worker takes the new snapshot soon (a post to its thread): until it
  // has, a request is still shed at once; then one is admitted and held.
  std::future<std::optional<Response>> admitted;
  ASSERT_TRUE(eventually([&] {
    admitted = std::async(std::launch::async, [&] { return held_get(proxy.port(), "/admitted"); });
    return app.server.requests() == 2 || admitted.wait_for(300ms) == std::future_status::timeout;
  }));
  ASSERT_TRUE(eventually([&] { return app.server.requests() == 2; }));
  app.released = true;
  EXPECT_EQ(held.get()->result_int(), 200);
  EXPECT_EQ(admitted.get()->result_int(), 200);
}

}  // namespace
