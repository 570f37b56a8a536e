// Protocol detection on a listener that takes more than HTTP (`protocol:
// auto` with a `cluster` for what is not HTTP, `sni` routes for TLS it does
// not terminate): HTTP/1.1 and h2c go through the routes, other bytes to the
// cluster as TCP, a server-speaks-first protocol (a client that sends
// nothing) falls back to TCP after detect_timeout without stalling, ports in
// opaque_ports skip the look, and TLS goes by its ClientHello's server name
// to one of two upstreams, bytes untouched (the client sees their
// certificates). Each verdict is counted.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <optional>

#include "support/h2.hpp"
#include "support/net.hpp"
#include "support/pki.hpp"
#include "support/process.hpp"
#include "support/tls_client.hpp"

namespace {

using namespace testing_support;
using Clock = std::chrono::steady_clock;

std::string config(std::uint16_t http, std::uint16_t tcp, const std::string& extra = "", const std::string& address = "127.0.0.1:0") {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
listeners:
  - name: edge
    address: {ADDRESS}
    cluster: raw
    {EXTRA}
    routes: [{ match: { prefix: / }, cluster: web }]
clusters:
  - { name: web, endpoints: [127.0.0.1:{HTTP}] }
  - { name: raw, endpoints: [127.0.0.1:{TCP}] }
)",
              {{"HTTP", std::to_string(http)}, {"TCP", std::to_string(tcp)}, {"EXTRA", extra}, {"ADDRESS", address}});
}

std::string detections(const std::string& result, int n) {
  return "outrigger_protocol_detections_total{direction=\"inbound\",listener=\"edge\",result=\"" + result + "\"} " +
         std::to_string(n);
}

TEST(Detection, Http1GoesThroughTheRoutes) {
  FakeUpstream web;
  EchoServer raw;
  Proxy proxy(config(web.port(), raw.port()));
  auto res = http_get(proxy.port("edge"), "/hello");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200);
  EXPECT_EQ(res->body(), "GET /hello 0");
  EXPECT_FALSE(web.last_request()["x-request-id"].empty());  // HTTP features apply
  EXPECT_EQ(raw.connections(), 0);
  const auto m = metrics(proxy);
  EXPECT_TRUE(has(m, detections("http1", 1)));
  // The verdict is timed too.
  EXPECT_TRUE(has(m, R"(outrigger_protocol_detection_duration_seconds_count{direction="inbound",listener="edge"} 1)")) << m;
}

TEST(Detection, H2cByPriorKnowledgeGoesThroughTheRoutes) {
  FakeUpstream web;
  EchoServer raw;
  Proxy proxy(config(web.port(), raw.port()));
  H2Client client(proxy.port("edge"));
  auto res = client.get("/h2");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "GET /h2 0");
  EXPECT_TRUE(has(metrics(proxy), detections("http2", 1)));
}

TEST(Detection, OtherBytesGoToTheClusterAsTcp) {
  FakeUpstream web;
  EchoServer raw;
  Proxy proxy(config(web.port(), raw.port()));
  auto s = Socket::connect(proxy.port("edge"));
  const std::string redis = "*1\r\n$4\r\nPING\r\n";  // RESP: not HTTP
  ASSERT_TRUE(s.send(redis));
  EXPECT_EQ(s.read_bytes(redis.size()), redis);
  EXPECT_EQ(web.requests(), 0);
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), detections("tcp", 1)); }));
}

TEST(Detection, AServerFirstProtocolGetsItsGreetingWellUnderASecond) {
  FakeUpstream web;
  EchoServer mysql("5.5.5-10.11.6-MariaDB greeting\n");
  Proxy proxy(config(web.port(), mysql.port()));
  const auto start = Clock::now();
  auto s = Socket::connect(proxy.port("edge"));
  EXPECT_EQ(s.read_bytes(31, 2s), "5.5.5-10.11.6-MariaDB greeting\n");
  const auto waited = Clock::now() - start;
  EXPECT_LT(waited, 500ms);  // detect_timeout is 100 ms by default
  EXPECT_GE(waited, 90ms);
  // The client answers; it is TCP from now on.
  ASSERT_TRUE(s.send("login"));
  EXPECT_EQ(s.read_bytes(5), "login");
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), detections("timeout", 1)); }));
}

TEST(Detection, AClientSlowerThanTheDetectTimeoutIsStillServedAsTcp) {
  FakeUpstream web;
  EchoServer raw;
  Proxy proxy(config(web.port(), raw.port(), "detect_timeout: 50ms"));
  auto s = Socket::connect(proxy.port("edge"));
  // Nothing within 50 ms: the connection is TCP (the echo server, not the routes).
  ASSERT_TRUE(eventually([&] { return raw.connections() == 1; }));
  const auto req = request_text("GET", "/late", {{"Host", "x"}});
  ASSERT_TRUE(s.send(req));
  EXPECT_EQ(s.read_bytes(req.size()), req);
  EXPECT_EQ(web.requests(), 0);
}

TEST(Detection, OpaquePortsSkipTheLook) {
  FakeUpstream web;
  EchoServer server_first("+OK POP3 ready\r\n");
  const auto port = closed_port();
  Proxy proxy(config(web.port(), server_first.port(), "opaque_ports: [" + std::to_string(port) + "]",
                     "127.0.0.1:" + std::to_string(port)));
  const auto start = Clock::now();
  auto s = Socket::connect(port);
  EXPECT_EQ(s.read_bytes(16, 2s), "+OK POP3 ready\r\n");
  EXPECT_LT(Clock::now() - start, 90ms);  // no detect_timeout to wait for
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), detections("opaque_port", 1)); }));
}

TEST(Detection, AShutdownDoesNotWaitForADetectTimeout) {
  FakeUpstream web;
  EchoServer raw;
  Proxy proxy(config(web.port(), raw.port(), "detect_timeout: 30s") + "drain_timeout: 200ms\n");
  auto silent = Socket::connect(proxy.port("edge"));
  ASSERT_TRUE(eventually([&] {
    return has(metrics(proxy), R"(outrigger_downstream_connections_active{direction="inbound",listener="edge",tls="false"} 1)");
  }));
  const auto start = Clock::now();
  EXPECT_EQ(proxy.drain_and_wait(5s), 0);
  EXPECT_LT(Clock::now() - start, 3s);
  EXPECT_TRUE(silent.closed_by_peer(1s));
  EXPECT_EQ(raw.connections(), 0);
}

// A TLS server answering every request with its own name.
std::string tls_upstream(const TestPki::Leaf& leaf, const std::string& name) {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
listeners:
  - name: ingress
    address: 127.0.0.1:0
    tls: { cert: {CERT}, key: {KEY} }
    routes: [{ match: { prefix: / }, direct_response: { status: 200, body: "{NAME}" } }]
)",
              {{"CERT", leaf.cert}, {"KEY", leaf.key}, {"NAME", name}});
}

TEST(Detection, TlsIsPassedThroughBySniToTwoUpstreams) {
  TestPki pki;
  const auto a_cert = pki.issue("a", {.dns = {"a.test"}});
  const auto b_cert = pki.issue("b", {.dns = {"api.b.test"}});
  Proxy a(tls_upstream(a_cert, "upstream a")), b(tls_upstream(b_cert, "upstream b"));
  EchoServer raw;
  TempDir dir;
  std::optional<Proxy> owner;
  auto& proxy = owner.emplace(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
access_log: { path: {LOG}, format: json }
listeners:
  - name: edge
    address: 127.0.0.1:0
    cluster: raw
    sni:
      - { names: [a.test], cluster: a }
      - { names: ["*.b.test"], cluster: b }
    routes: [{ match: { prefix: / }, direct_response: { status: 404 } }]
clusters:
  - { name: a, endpoints: [127.0.0.1:{A}] }
  - { name: b, endpoints: [127.0.0.1:{B}] }
  - { name: raw, endpoints: [127.0.0.1:{RAW}] }
)",
                   {{"A", std::to_string(a.port())}, {"B", std::to_string(b.port())},
                    {"RAW", std::to_string(raw.port())}, {"LOG", dir.file("access.log")}}));
  for (const auto& [sni, body] : std::vector<std::pair<std::string, std::string>>{{"a.test", "upstream a"},
                                                                                  {"api.b.test", "upstream b"}}) {
    // The client verifies the upstream's own certificate: nothing in between terminated TLS.
    TlsClient client(proxy.port("edge"), {.ca = pki.ca_path(), .sni = sni});
    ASSERT_TRUE(client.connected()) << sni << ": " << client.error();
    ASSERT_TRUE(client.send(request_text("GET", "/", {{"Host", sni}})));
    auto res = client.read_response();
    ASSERT_TRUE(res) << sni;
    EXPECT_EQ(res->body(), body);
  }
  EXPECT_EQ(raw.connections(), 0);
  EXPECT_TRUE(eventually([&] {
    const auto m = metrics(proxy);
    return has(m, detections("tls", 2)) &&
           has(m, R"(outrigger_tunnels_total{direction="inbound",listener="edge",kind="tls_passthrough"} 2)");
  })) << metrics(proxy);
  EXPECT_EQ(proxy.drain_and_wait(), 0);
  owner.reset();  // the server and its access log are gone: everything is flushed
  const auto log = slurp(dir.file("access.log"));
  EXPECT_NE(log.find(R"("protocol":"TLS")"), std::string::npos) << log;
  EXPECT_NE(log.find(R"("authority":"api.b.test")"), std::string::npos) << log;
}

TEST(Detection, TlsWithAnUnknownNameGoesToTheListenersCluster) {
  TestPki pki;
  const auto a_cert = pki.issue("a", {.dns = {"a.test"}});
  Proxy a(tls_upstream(a_cert, "upstream a"));
  FakeUpstream web;
  Proxy proxy(config(web.port(), a.port(), "sni: [{ names: [other.test], cluster: web }]"));
  TlsClient client(proxy.port("edge"), {.ca = pki.ca_path(), .sni = "a.test"});
  ASSERT_TRUE(client.connected()) << client.error();
  EXPECT_EQ(client.get("/"), 200);
  EXPECT_EQ(web.requests(), 0);
}

}  // namespace
