// HTTP/2 toward the upstream (cluster `protocol: http2 | auto`): one
// connection per endpoint carrying many streams, the upstream's
// max_concurrent_streams respected, GOAWAY retried on a fresh connection,
// PING keepalive and its timeout, per-request balancing, trailers and the
// HTTP/1.1 <-> HTTP/2 translation, ALPN for `auto` over TLS.
#include <gtest/gtest.h>

#include <thread>

#include "support/h2.hpp"
#include "support/net.hpp"
#include "support/pki.hpp"

namespace {

using namespace testing_support;

std::string config(const std::string& endpoints, const std::string& cluster_extra = "",
                   const std::string& route_extra = "") {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes: [{ cluster: app, timeout: 5s {ROUTE} }]
clusters:
  - { name: app, protocol: http2, endpoints: [{EPS}] {EXTRA} }
)",
              {{"EPS", endpoints}, {"EXTRA", cluster_extra}, {"ROUTE", route_extra}});
}
std::string endpoint(const H2Upstream& up) { return "127.0.0.1:" + std::to_string(up.port()); }

std::string event(const std::string& name) {
  return "outrigger_http2_events_total{side=\"upstream\",listener=\"\",cluster=\"app\",event=\"" + name + "\"} ";
}

// `n` HTTP/1.1 requests at once, each on its own connection; their statuses.
std::vector<int> parallel(std::uint16_t port, int n, const std::string& method = "GET",
                          const std::string& body = "") {
  std::vector<int> statuses(n, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      auto s = Socket::connect(port);
      if (!s.send(request_text(method, "/p/" + std::to_string(i), {{"Host", "app.local"}}, body))) return;
      if (auto r = s.read_response(8s)) statuses[i] = r->result_int();
    });
  for (auto& t : threads) t.join();
  return statuses;
}

TEST(Http2Upstream, TranslatesAnHttp1RequestIntoAStream) {
  H2Upstream up;
  Proxy proxy(config(endpoint(up)));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("POST", "/orders?x=1",
                                  {{"Host", "shop.local"},
                                   {"Connection", "keep-alive, x-private"},
                                   {"X-Private", "1"},
                                   {"TE", "trailers"},
                                   {"Content-Type", "application/json"}},
                                  "{\"a\":1}")));
  auto r = s.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200);
  EXPECT_EQ(r->body(), "POST /orders?x=1 7\n");
  const auto req = up.last_request();
  EXPECT_EQ(req.header(":method"), "POST");
  EXPECT_EQ(req.header(":scheme"), "http");
  EXPECT_EQ(req.header(":authority"), "shop.local");
  EXPECT_EQ(req.header(":path"), "/orders?x=1");
  EXPECT_EQ(req.header("host"), "");  // :authority stands for it
  EXPECT_EQ(req.header("connection"), "");
  EXPECT_EQ(req.header("x-private"), "");
  EXPECT_EQ(req.header("te"), "trailers");
  EXPECT_EQ(req.header("content-type"), "application/json");
  EXPECT_EQ(req.header("x-forwarded-for"), "127.0.0.1");
  EXPECT_EQ(req.body, "{\"a\":1}");
  // The same client connection goes on (keep-alive), on the same upstream connection.
  ASSERT_TRUE(s.send(request_text("GET", "/again", {{"Host", "shop.local"}})));
  auto r2 = s.read_response();
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->body(), "GET /again 0\n");
  EXPECT_EQ(up.connections(), 1);
}

TEST(Http2Upstream, StreamsAChunkedBodyWithItsTrailers) {
  H2Upstream up;
  Proxy proxy(config(endpoint(up)));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send("POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3\r\nabc\r\n4\r\ndefg\r\n0\r\nx-sum: 7\r\n\r\n"));
  auto r = s.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body(), "POST /c 7\n");
  EXPECT_EQ((*r)["x-sum"], "7");  // the echo's trailers, as chunked trailers
  const auto req = up.last_request();
  EXPECT_EQ(req.body, "abcdefg");
  ASSERT_EQ(req.trailers.size(), 1u);
  EXPECT_EQ(req.trailers[0], (std::pair<std::string, std::string>{"x-sum", "7"}));
  EXPECT_EQ(req.header("transfer-encoding"), "");
}

TEST(Http2Upstream, CarriesAnHttp2ClientsTrailersBothWays) {
  H2Upstream up([](const H2Upstream::Request& r) {
    H2Upstream::Reply reply;
    reply.headers = {{"content-type", "application/grpc"}};
    reply.body = "\0\0\0\0\1x";
    reply.trailers = {{"grpc-status", "0"}, {"grpc-message", "ok"}, {"x-echo-bin", r.header("x-data-bin")}};
    return reply;
  });
  Proxy proxy(config(endpoint(up)));
  H2Client client(proxy.port());
  auto r = client.wait(client.submit("POST", "/pkg.Svc/Call",
                                     {{"content-type", "application/grpc"}, {"te", "trailers"}, {"x-data-bin", "AAEC"}},
                                     std::string("\0\0\0\0\0", 5), {{"x-client-trailer", "t"}}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->trailer("grpc-status"), "0");
  EXPECT_EQ(r->trailer("grpc-message"), "ok");
  EXPECT_EQ(r->trailer("x-echo-bin"), "AAEC");
  const auto req = up.last_request();
  EXPECT_EQ(req.header("te"), "trailers");
  ASSERT_EQ(req.trailers.size(), 1u);
  EXPECT_EQ(req.trailers[0].first, "x-client-trailer");
}

TEST(Http2Upstream, ManyRequestsShareOneConnection) {
  H2Upstream up([](const H2Upstream::Request& r) {
    auto reply = H2Upstream::echo(r);
    reply.delay = 200ms;
    return reply;
  });
  Proxy proxy(config(endpoint(up)));
  const auto statuses = parallel(proxy.port(), 20);
  for (int st : statuses) EXPECT_EQ(st, 200);
  EXPECT_EQ(up.connections(), 1);
  EXPECT_GE(up.max_concurrent(), 10);  // they were in flight together, as streams
  const auto m = metrics(proxy);
  EXPECT_TRUE(has(m, "outrigger_http2_connections_total{side=\"upstream\",listener=\"\",cluster=\"app\"} 1")) << m;
}

TEST(Http2Upstream, AClientThatStopsReadingHoldsBackOnlyItsOwnStream) {
  // The stream's window opens only as its client takes the bytes: a stalled
  // client leaves the shared connection's window, and the other streams, alone.
  H2Upstream up([](const H2Upstream::Request& r) {
    auto reply = H2Upstream::echo(r);
    if (r.header(":path") == "/big") reply.body = std::string(4 << 20, 'b');
    return reply;
  });
  Proxy proxy(config(endpoint(up)));
  auto stalled = Socket::connect(proxy.port());
  ASSERT_TRUE(stalled.send(request_text("GET", "/big", {{"Host", "a"}})));  // and never read
  ASSERT_TRUE(eventually([&] { return up.requests() == 1; }));
  for (int i = 0; i < 5; ++i) {
    auto r = http_get(proxy.port(), "/small");
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->body(), "GET /small 0\n");
  }
  EXPECT_EQ(up.connections(), 1);  // the same connection carried them
}

TEST(Http2Upstream, RespectsTheUpstreamsStreamLimitAndOpensAnotherConnection) {
  H2Upstream up({.max_concurrent_streams = 3}, [](const H2Upstream::Request& r) {
    auto reply = H2Upstream::echo(r);
    reply.delay = 300ms;
    return reply;
  });
  Proxy proxy(config(endpoint(up)));
  // The first request learns the limit (the upstream's SETTINGS); the rest follow.
  ASSERT_EQ(http_get(proxy.port(), "/warm")->result_int(), 200);
  const auto statuses = parallel(proxy.port(), 9);
  for (int st : statuses) EXPECT_EQ(st, 200);
  EXPECT_LE(up.max_concurrent(), 3);
  EXPECT_GE(up.connections(), 3);
}

TEST(Http2Upstream, OurOwnStreamLimitToo) {
  H2Upstream up([](const H2Upstream::Request& r) {
    auto reply = H2Upstream::echo(r);
    reply.delay = 300ms;
    return reply;
  });
  Proxy proxy(config(endpoint(up), ", http2: { max_concurrent_streams: 2 }"));
  const auto statuses = parallel(proxy.port(), 6);
  for (int st : statuses) EXPECT_EQ(st, 200);
  EXPECT_LE(up.max_concurrent(), 2);
  EXPECT_GE(up.connections(), 3);
}

TEST(Http2Upstream, RetriesTheStreamsAGoawayLeftUnprocessedWhateverTheMethod) {
  // Each connection takes one request, then GOAWAY: the streams above its
  // last id were not processed, and go again on a new connection.
  H2Upstream up({.goaway_after = 1}, [](const H2Upstream::Request& r) {
    auto reply = H2Upstream::echo(r);
    reply.delay = 100ms;
    return reply;
  });
  Proxy proxy(config(endpoint(up)));
  const auto statuses = parallel(proxy.port(), 6, "POST", "data");  // POST: not retried otherwise
  for (int st : statuses) EXPECT_EQ(st, 200);
  EXPECT_EQ(up.requests(), 6);     // each processed once
  EXPECT_GE(up.connections(), 2);
  EXPECT_TRUE(has(metrics(proxy), event("goaway_received")));
}

TEST(Http2Upstream, AResetStreamIsA502ForThatRequestOnly) {
  H2Upstream up([](const H2Upstream::Request& r) {
    auto reply = H2Upstream::echo(r);
    if (r.header(":path") == "/bad") reply.reset = 2;  // INTERNAL_ERROR
    return reply;
  });
  Proxy proxy(config(endpoint(up)));
  EXPECT_EQ(http_get(proxy.port(), "/bad")->result_int(), 502);
  EXPECT_EQ(http_get(proxy.port(), "/good")->result_int(), 200);
  EXPECT_EQ(up.connections(), 1);
  EXPECT_TRUE(has(metrics(proxy), event("reset_received") + "1"));
}

TEST(Http2Upstream, PingsAnIdleConnectionAndClosesOneThatDoesNotAnswer) {
  H2Upstream quiet({.ack_pings = false}, [](const H2Upstream::Request& r) {
    auto reply = H2Upstream::echo(r);
    if (r.header(":path") == "/slow") reply.delay = 20s;
    return reply;
  });
  Proxy proxy(config(endpoint(quiet), ", http2: { ping_interval: 1s, ping_timeout: 1s }"));
  ASSERT_EQ(http_get(proxy.port(), "/first")->result_int(), 200);
  // A request that waits on a connection whose peer stopped answering
  // fails when the PING times out, not at the route timeout (5 s).
  const auto start = std::chrono::steady_clock::now();
  auto r = http_get(proxy.port(), "/slow");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 502);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4500ms);
  EXPECT_GE(quiet.pings(), 1);
  EXPECT_TRUE(has(metrics(proxy), event("keepalive_timeout") + "1"));
}

TEST(Http2Upstream, AnAnsweredPingKeepsTheConnection) {
  H2Upstream up;
  Proxy proxy(config(endpoint(up), ", http2: { ping_interval: 1s, ping_timeout: 1s }"));
  ASSERT_EQ(http_get(proxy.port(), "/a")->result_int(), 200);
  // The pool's sweep looks once a second: two PINGs take 2 to 4 s.
  ASSERT_TRUE(eventually([&] { return up.pings() >= 2; }, 8s));
  ASSERT_EQ(http_get(proxy.port(), "/b")->result_int(), 200);
  EXPECT_EQ(up.connections(), 1);
  EXPECT_TRUE(has(metrics(proxy), event("keepalive_timeout") + "0"));
}

TEST(Http2Upstream, BalancesEachRequestNotEachConnection) {
  H2Upstream a, b;
  Proxy proxy(config(endpoint(a) + ", " + endpoint(b)));
  // One HTTP/2 client connection, many requests: both endpoints get some.
  H2Client client(proxy.port());
  for (int i = 0; i < 10; ++i) ASSERT_EQ(client.get("/r")->status, 200);
  EXPECT_EQ(a.requests(), 5);
  EXPECT_EQ(b.requests(), 5);
  EXPECT_EQ(a.connections(), 1);
  EXPECT_EQ(b.connections(), 1);
}

TEST(Http2Upstream, ClosesAConnectionIdleForThePoolsIdleTimeout) {
  H2Upstream up;
  Proxy proxy(config(endpoint(up), ", connection_pool: { idle_timeout: 1s }"));
  ASSERT_EQ(http_get(proxy.port(), "/a")->result_int(), 200);
  const std::string active = "outrigger_http2_connections_active{side=\"upstream\",listener=\"\",cluster=\"app\"} ";
  EXPECT_TRUE(has(metrics(proxy), active + "1"));
  ASSERT_TRUE(eventually([&] { return has(metrics(proxy), active + "0"); }));
  ASSERT_EQ(http_get(proxy.port(), "/b")->result_int(), 200);
  EXPECT_EQ(up.connections(), 2);
}

TEST(Http2Upstream, ARefusedConnectIsA503) {
  std::uint16_t closed_port;
  {
    H2Upstream gone;
    closed_port = gone.port();
  }
  Proxy proxy(config("127.0.0.1:" + std::to_string(closed_port)));
  EXPECT_EQ(http_get(proxy.port(), "/x")->result_int(), 503);
}

TEST(Http2Upstream, AutoSpeaksHttp2WhereAlpnSaysSoOverTls) {
  // The upstream is another Outrigger with a TLS listener that offers h2 and http/1.1.
  TestPki pki;
  const auto leaf = pki.issue("upstream", {.dns = {"upstream.local"}});
  FakeUpstream app;
  Proxy inner(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    tls: { cert: {CERT}, key: {KEY} }
    routes: [{ cluster: app }]
clusters:
  - { name: app, endpoints: [127.0.0.1:{APP}] }
)",
                   {{"CERT", leaf.cert}, {"KEY", leaf.key}, {"APP", std::to_string(app.port())}}));
  for (const char* protocol : {"auto", "http1"}) {
    Proxy outer(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes: [{ cluster: inner }]
clusters:
  - name: inner
    protocol: {PROTOCOL}
    endpoints: [127.0.0.1:{INNER}]
    tls: { ca: {CA}, sni: upstream.local }
    health_check: { path: /healthz, interval: 50ms, unhealthy_threshold: 1 }
)",
                     {{"PROTOCOL", protocol}, {"INNER", std::to_string(inner.port())}, {"CA", pki.ca_path()}}));
    // The health checks offer only http/1.1 by ALPN, whatever the cluster offers its
    // requests: they pass (an endpoint that failed one would be out, and the requests 503).
    ASSERT_TRUE(eventually([&] { return app.requests() >= 3; })) << protocol;
    for (int i = 0; i < 3; ++i) ASSERT_EQ(http_get(outer.port(), "/x")->result_int(), 200) << protocol;
    const auto seen = app.requests();
    ASSERT_TRUE(eventually([&] { return app.requests() >= seen + 2; })) << protocol;
    EXPECT_EQ(http_get(outer.port(), "/x")->result_int(), 200) << protocol;
  }
  // The requests of `auto` went as HTTP/2 (4), the rest (health checks, http1) as HTTP/1.1.
  const auto m = metrics(inner);
  EXPECT_TRUE(has(m, "outrigger_downstream_requests_total{direction=\"inbound\",listener=\"ingress\",protocol=\"http2\"} 4"))
      << m;
}

TEST(Http2Upstream, AReloadThatDropsTheClusterClosesItsConnections) {
  H2Upstream up;
  FakeUpstream other;
  Proxy proxy(config(endpoint(up)));
  ASSERT_EQ(http_get(proxy.port(), "/a")->result_int(), 200);
  // The new config routes elsewhere: the old pools go with the last request of the old config.
  const auto next = fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes: [{ cluster: other }]
clusters:
  - { name: other, endpoints: [127.0.0.1:{PORT}] }
)",
                         {{"PORT", std::to_string(other.port())}});
  ASSERT_TRUE(proxy.server().reload(parse_config(next)).empty());
  ASSERT_TRUE(eventually([&] { return http_get(proxy.port(), "/b")->body() == "GET /b 0"; }));
  ASSERT_TRUE(eventually([&] {
    return has(metrics(proxy), "outrigger_http2_connections_active{side=\"upstream\",listener=\"\",cluster=\"app\"} 0");
  }));
}

TEST(Http2Upstream, ManyRequestFieldsKeepTheirNamesLowerCased) {
  H2Upstream up;
  Proxy proxy(config(endpoint(up)));
  std::vector<std::pair<std::string, std::string>> fields{{"Host", "a"}, {"Accept-Language", "en"}};
  for (int i = 0; i < 40; ++i) fields.emplace_back("X-Field-Number-" + std::to_string(i), "v" + std::to_string(i));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("GET", "/many", fields)));
  ASSERT_EQ(s.read_response()->result_int(), 200);
  const auto req = up.last_request();
  EXPECT_EQ(req.header("accept-language"), "en");
  for (int i = 0; i < 40; ++i) EXPECT_EQ(req.header("x-field-number-" + std::to_string(i)), "v" + std::to_string(i)) << i;
}

}  // namespace
