// The fault filter as clients and operators see it: aborts that never reach
// the upstream, shares of traffic, delays that hold one request and not the
// worker, gRPC aborts, header-chosen faults on trusted listeners only,
// max_active_faults, per-route settings, and clients that leave mid-delay.
#include <gtest/gtest.h>

#include <boost/beast/core/string.hpp>
#include <algorithm>
#include <thread>

#include "support/h2.hpp"
#include "support/net.hpp"

namespace {

using namespace testing_support;
using Clock = std::chrono::steady_clock;

// Listener `ingress` (one worker) with `filter`, routes as given, to `app`.
std::string config(std::uint16_t app, const std::string& filter,
                   const std::string& routes = "[{ cluster: app }]", const std::string& listener_extra = "") {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    filters: [{FILTER}]
    routes: {ROUTES}
{EXTRA}
clusters:
  - { name: app, endpoints: [127.0.0.1:{APP}] }
)",
              {{"APP", std::to_string(app)}, {"FILTER", filter}, {"ROUTES", routes}, {"EXTRA", listener_extra}});
}

int get(Socket& s, const std::string& target = "/x", std::vector<std::pair<std::string, std::string>> headers = {},
        Response* out = nullptr, std::chrono::milliseconds timeout = 5s) {
  if (!s.send(request_text("GET", target, std::move(headers)))) return -1;
  auto res = s.read_response(timeout);
  if (!res) return -1;
  if (out) *out = *res;
  return res->result_int();
}

std::string series(const std::string& name, const std::string& labels = "") {
  return name + "{direction=\"inbound\",listener=\"ingress\"" + labels + "} ";
}
const std::string kAborts = series("outrigger_fault_injected_total", ",fault=\"abort\"");
const std::string kDelays = series("outrigger_fault_injected_total", ",fault=\"delay\"");
const std::string kActive = series("outrigger_fault_active");
const std::string kOverflow = series("outrigger_fault_overflow_total");

std::chrono::milliseconds since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t);
}

TEST(Fault, AbortAnswersTheStatusAndTheUpstreamSeesNothing) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), "{ type: fault, abort: { status: 503 } }"));
  auto s = Socket::connect(proxy.port());
  for (int i = 0; i < 5; ++i) {
    Response res;
    EXPECT_EQ(get(s, "/x", {}, &res), 503);
    EXPECT_EQ(res["x-outrigger-error"], "fault_abort");
  }
  EXPECT_EQ(app.requests(), 0);
  EXPECT_EQ(app.connections(), 0);
  // The last exchange is counted when it ends, which may be just after the
  // client has read its response: wait for all the figures together.
  const std::string requests = "outrigger_requests_total{direction=\"inbound\",listener=\"ingress\","
                               "route=\"ingress/0\",cluster=\"app\",code=\"503\"} 5";
  std::string text;
  EXPECT_TRUE(eventually([&] {
    text = metrics(proxy);
    return has(text, kAborts + "5") && has(text, kDelays + "0") && has(text, kActive + "0") && has(text, requests);
  })) << text;
}

TEST(Fault, AbortsAboutTheConfiguredShare) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), "{ type: fault, abort: { status: 500, percent: 50 } }"));
  const int n = 400;
  auto statuses = send_gets(proxy.port(), n);
  ASSERT_EQ(statuses.size(), static_cast<std::size_t>(n));
  const auto aborted = std::count(statuses.begin(), statuses.end(), 500);
  const auto passed = std::count(statuses.begin(), statuses.end(), 200);
  EXPECT_EQ(aborted + passed, n);
  // Binomial(400, 0.5): sd 10; 150..250 is five of them either side.
  EXPECT_GE(aborted, 150);
  EXPECT_LE(aborted, 250);
  EXPECT_EQ(app.requests(), passed);
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), kAborts + std::to_string(aborted)); }));
}

TEST(Fault, DelayHoldsTheRequestButNotTheWorker) {
  FakeUpstream app;
  // One worker: a delay that blocked it would hold /fast up too.
  Proxy proxy(config(app.port(), "{ type: fault, delay: { fixed: 1s } }",
                     "[{ match: { prefix: /fast }, cluster: app, per_filter_config: { fault: { disabled: true } } },"
                     " { cluster: app }]"));
  auto slow = Socket::connect(proxy.port());
  const auto start = Clock::now();
  ASSERT_TRUE(slow.send(request_text("GET", "/slow")));
  ASSERT_TRUE(eventually([&] { return has(metrics(proxy), kActive + "1"); }));
  auto fast = Socket::connect(proxy.port());
  EXPECT_EQ(get(fast, "/fast"), 200);
  const auto fast_done = since(start);
  EXPECT_LT(fast_done, 1s) << "the fast request waited for the delayed one";
  EXPECT_EQ(app.requests(), 1);  // the delayed one has not gone upstream yet
  auto res = slow.read_response(5s);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200);
  EXPECT_GE(since(start), 1s);
  EXPECT_EQ(app.requests(), 2);
  EXPECT_TRUE(eventually([&] {
    const auto text = metrics(proxy);
    return has(text, kDelays + "1") && has(text, kActive + "0");
  }));
}

TEST(Fault, RouteTimeoutEndsADelayWithGatewayTimeout) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), "{ type: fault, delay: { fixed: 30s } }", "[{ cluster: app, timeout: 300ms }]"));
  auto s = Socket::connect(proxy.port());
  const auto start = Clock::now();
  Response res;
  EXPECT_EQ(get(s, "/x", {}, &res), 504);
  EXPECT_LT(since(start), 5s);
  EXPECT_EQ(res["x-outrigger-error"], "timeout");
  EXPECT_EQ(app.requests(), 0);
}

TEST(Fault, GrpcStatusAbortIsATrailersOnlyGrpcError) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), "{ type: fault, abort: { grpc_status: 14 } }"));
  H2Client client(proxy.port());
  ASSERT_TRUE(client.connected());
  const auto id = client.submit("POST", "/pkg.Echo/Say", {{"content-type", "application/grpc"}, {"te", "trailers"}},
                                std::string("\0\0\0\0\0", 5));
  auto res = client.wait(id);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->header("grpc-status"), "14");
  EXPECT_EQ(res->header("grpc-message"), "fault filter abort");
  EXPECT_EQ(res->header("content-type"), "application/grpc");
  EXPECT_EQ(res->body, "");
  EXPECT_EQ(app.requests(), 0);
  EXPECT_TRUE(eventually([&] {
    return has(metrics(proxy), "outrigger_grpc_requests_total{direction=\"inbound\",listener=\"ingress\","
                               "route=\"ingress/0\",cluster=\"app\",grpc_status=\"14\"} 1");
  }));
}

// Two listeners with the same header-driven filter: `trusted` believes its
// clients, `ingress` does not.
std::string header_config(std::uint16_t app) {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    filters: [{ type: fault, delay: { header: true }, abort: { header: true } }]
    routes: [{ cluster: app }]
  - name: trusted
    address: 127.0.0.1:0
    trust_request_headers: true
    filters: [{ type: fault, delay: { header: true }, abort: { header: true } }]
    routes: [{ cluster: app }]
clusters:
  - { name: app, endpoints: [127.0.0.1:{APP}] }
)",
              {{"APP", std::to_string(app)}});
}

bool has_fault_header(const Request& r) {
  for (const auto& f : r)
    if (boost::beast::iequals(f.name_string().substr(0, 17), "x-outrigger-fault")) return true;
  return false;
}

TEST(Fault, HeaderFaultsOnATrustedListenerOnly) {
  FakeUpstream app;
  Proxy proxy(header_config(app.port()));
  auto trusted = Socket::connect(proxy.port("trusted"));
  Response res;
  EXPECT_EQ(get(trusted, "/x", {{"x-outrigger-fault-abort-request", "418"}}, &res), 418);
  EXPECT_EQ(res["x-outrigger-error"], "fault_abort");
  EXPECT_EQ(app.requests(), 0);
  // A delay the client asks for, and a share: 0 % of the abort means none.
  const auto start = Clock::now();
  EXPECT_EQ(get(trusted, "/x",
                {{"x-outrigger-fault-delay-request", "300"},
                 {"x-outrigger-fault-abort-request", "503"},
                 {"x-outrigger-fault-abort-request-percentage", "0"}}),
            200);
  EXPECT_GE(since(start), 300ms);
  ASSERT_EQ(app.requests(), 1);
  EXPECT_FALSE(has_fault_header(app.last_request())) << "a fault header reached the upstream";
  EXPECT_TRUE(eventually([&] {
    return has(metrics(proxy), "outrigger_fault_injected_total{direction=\"inbound\",listener=\"trusted\","
                               "fault=\"delay\"} 1");
  }));

  // The untrusted listener ignores them, and strips them.
  auto untrusted = Socket::connect(proxy.port("ingress"));
  const auto start2 = Clock::now();
  EXPECT_EQ(get(untrusted, "/x",
                {{"x-outrigger-fault-abort-request", "418"},
                 {"x-outrigger-fault-abort-grpc-request", "14"},
                 {"x-outrigger-fault-delay-request", "2000"}}),
            200);
  EXPECT_LT(since(start2), 2s);
  ASSERT_EQ(app.requests(), 2);
  EXPECT_FALSE(has_fault_header(app.last_request())) << "a fault header reached the upstream";
  const auto text = metrics(proxy);
  EXPECT_TRUE(has(text, kAborts + "0")) << text;
  EXPECT_TRUE(has(text, kDelays + "0")) << text;
}

TEST(Fault, MaxActiveFaultsCapsConcurrentDelays) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), "{ type: fault, delay: { fixed: 1500ms }, max_active_faults: 2 }"));
  auto a = Socket::connect(proxy.port()), b = Socket::connect(proxy.port());
  const auto start = Clock::now();
  ASSERT_TRUE(a.send(request_text("GET", "/a")));
  ASSERT_TRUE(b.send(request_text("GET", "/b")));
  ASSERT_TRUE(eventually([&] { return has(metrics(proxy), kActive + "2"); }));
  // Two requests in a fault: the next ones pass at once, and are counted.
  auto c = Socket::connect(proxy.port());
  EXPECT_EQ(get(c, "/c"), 200);
  EXPECT_EQ(get(c, "/d"), 200);
  EXPECT_LT(since(start), 1500ms);
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), kOverflow + "2"); }));
  auto ra = a.read_response(5s), rb = b.read_response(5s);
  ASSERT_TRUE(ra && rb);
  EXPECT_EQ(ra->result_int(), 200);
  EXPECT_EQ(rb->result_int(), 200);
  EXPECT_GE(since(start), 1500ms);
  EXPECT_TRUE(eventually([&] {
    const auto text = metrics(proxy);
    return has(text, kActive + "0") && has(text, kDelays + "2");
  }));
  // With none in a fault, the next request is delayed again.
  EXPECT_EQ(get(c, "/e"), 200);
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), kDelays + "3"); }));
}

TEST(Fault, RoutesReplaceOrDisableTheListenersSettings) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), "{ type: fault, abort: { status: 503 } }",
                     "[{ match: { prefix: /off }, cluster: app, per_filter_config: { fault: { disabled: true } } },"
                     " { match: { prefix: /teapot }, cluster: app,"
                     "   per_filter_config: { fault: { abort: { status: 418 } } } },"
                     " { cluster: app }]"));
  auto s = Socket::connect(proxy.port());
  EXPECT_EQ(get(s, "/off"), 200);
  EXPECT_EQ(get(s, "/teapot"), 418);
  EXPECT_EQ(get(s, "/other"), 503);
  EXPECT_EQ(app.requests(), 1);
}

TEST(Fault, ClientsLeavingDuringADelayLeaveTheProxyHealthy) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), "{ type: fault, delay: { fixed: 1s } }",
                     "[{ match: { prefix: /fast }, cluster: app, per_filter_config: { fault: { disabled: true } } },"
                     " { cluster: app }]"));
  {
    auto gone = Socket::connect(proxy.port());
    ASSERT_TRUE(gone.send(request_text("GET", "/x")));
    ASSERT_TRUE(eventually([&] { return has(metrics(proxy), kActive + "1"); }));
    gone.reset();
  }
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), kActive + "0"); }, 5s));
  {
    // An HTTP/2 stream reset mid-delay, and its connection closed.
    H2Client h2(proxy.port());
    ASSERT_TRUE(h2.connected());
    const auto id = h2.submit("GET", "/y");
    ASSERT_TRUE(eventually([&] { return has(metrics(proxy), kActive + "1"); }));
    h2.reset_stream(id);
    h2.ping();
  }
  auto s = Socket::connect(proxy.port());
  EXPECT_EQ(get(s, "/fast"), 200);
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), kActive + "0"); }, 5s));
  EXPECT_EQ(get(s, "/fast"), 200);
  EXPECT_EQ(get(s, "/x"), 200);  // delayed, and answered
  H2Client again(proxy.port());
  auto res = again.get("/fast");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

// The client of an HTTP/2 stream resets it 100 ms into a 10 s delay: the
// delay ends then, not 10 s later (its max_active_faults slot and its timer
// go back at once), nothing reaches the upstream, and the connection serves
// the next stream.
TEST(Fault, AStreamResetDuringADelayEndsItAtOnce) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), "{ type: fault, delay: { fixed: 10s }, max_active_faults: 1 }",
                     "[{ match: { prefix: /fast }, cluster: app, per_filter_config: { fault: { disabled: true } } },"
                     " { cluster: app, timeout: 30s }]"));
  H2Client h2(proxy.port());
  ASSERT_TRUE(h2.connected());
  const auto id = h2.submit("GET", "/slow");
  ASSERT_TRUE(eventually([&] { return has(metrics(proxy), kActive + "1"); }));
  const auto reset_at = Clock::now();
  h2.reset_stream(id);
  h2.ping();
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), kActive + "0"); }, 5s));
  EXPECT_LT(since(reset_at), 5s);
  auto res = h2.get("/fast");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(app.requests(), 1);  // /fast only
  // The slot is free: the next request is delayed (and not skipped as overflow).
  const auto next = h2.submit("GET", "/slow2");
  ASSERT_TRUE(eventually([&] { return has(metrics(proxy), kActive + "1") && has(metrics(proxy), kDelays + "2"); }));
  EXPECT_TRUE(has(metrics(proxy), kOverflow + "0"));
  h2.reset_stream(next);
  h2.ping();
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), kActive + "0"); }, 5s));
}

// `headers:` narrows the listener's faults, and a route's, to the requests
// that match (Envoy's fault `headers`).
TEST(Fault, HeadersNarrowTheFaultsToMatchingRequests) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), "{ type: fault, abort: { status: 503 }, headers: [{ name: x-chaos, exact: 'on' }] }",
                     "[{ match: { prefix: /teapot }, cluster: app,"
                     "   per_filter_config: { fault: { abort: { status: 418 }, headers: [{ name: x-tea, present: true }] } } },"
                     " { cluster: app }]"));
  auto s = Socket::connect(proxy.port());
  EXPECT_EQ(get(s, "/x"), 200);
  EXPECT_EQ(get(s, "/x", {{"x-chaos", "off"}}), 200);
  Response res;
  EXPECT_EQ(get(s, "/x", {{"x-chaos", "on"}}, &res), 503);
  EXPECT_EQ(res["x-outrigger-error"], "fault_abort");
  EXPECT_EQ(get(s, "/teapot", {{"x-chaos", "on"}}), 200);  // the route's own headers decide there
  EXPECT_EQ(get(s, "/teapot", {{"x-tea", "earl grey"}}), 418);
  EXPECT_EQ(app.requests(), 3);
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), kAborts + "2"); }));
}

}  // namespace
