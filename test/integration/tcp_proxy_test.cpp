// Opaque TCP through Outrigger (`protocol: tcp` listeners): bytes both ways
// with half-close, a connect failure retried on another endpoint, the
// cluster's max_connections, the tunnel idle timeout, one access-log line
// per connection, rbac by source address, mTLS between two Outriggers (TCP
// wrapped by the outbound one, terminated by the inbound one, the client's
// identity checked there), and drain.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <optional>
#include <thread>

#include "support/net.hpp"
#include "support/pki.hpp"
#include "support/process.hpp"

namespace {

using namespace testing_support;
namespace json = boost::json;

std::string tcp_config(const std::string& endpoints, const std::string& listener_extra = "",
                       const std::string& cluster_extra = "", const std::string& top = "") {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
{TOP}
listeners:
  - name: tcp
    address: 127.0.0.1:0
    protocol: tcp
    cluster: backend
    {LISTENER}
clusters:
  - name: backend
    endpoints: [{ENDPOINTS}]
    {CLUSTER}
)",
              {{"ENDPOINTS", endpoints}, {"LISTENER", listener_extra}, {"CLUSTER", cluster_extra}, {"TOP", top}});
}

std::string at(std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

TEST(TcpProxy, BytesGoBothWaysAndAHalfCloseIsPassedOn) {
  EchoServer echo;
  Proxy proxy(tcp_config(at(echo.port())));
  auto s = Socket::connect(proxy.port("tcp"));
  const std::string big(300'000, 'x');
  ASSERT_TRUE(s.send("hello "));
  EXPECT_EQ(s.read_bytes(6), "hello ");
  ASSERT_TRUE(s.send(big));
  // The client is done writing; the echo of everything still comes back,
  // then the server's own end of file.
  s.shutdown_write();
  EXPECT_EQ(s.read_until_close(5s), big);
  EXPECT_TRUE(eventually([&] {
    const auto m = metrics(proxy);
    return has(m, R"(outrigger_tunnels_total{direction="inbound",listener="tcp",kind="tcp"} 1)") &&
           has(m, R"(outrigger_tunnel_received_bytes_total{direction="inbound",listener="tcp",kind="tcp"} 300006)") &&
           has(m, R"(outrigger_tunnel_sent_bytes_total{direction="inbound",listener="tcp",kind="tcp"} 300006)") &&
           has(m, R"(outrigger_tunnels_active{direction="inbound",listener="tcp",kind="tcp"} 0)");
  })) << metrics(proxy);
}

TEST(TcpProxy, AConnectFailureTriesAnotherEndpoint) {
  EchoServer echo;
  Proxy proxy(tcp_config(at(closed_port()) + ", " + at(echo.port())));
  for (int i = 0; i < 4; ++i) {
    auto s = Socket::connect(proxy.port("tcp"));
    ASSERT_TRUE(s.send("ping"));
    EXPECT_EQ(s.read_bytes(4), "ping") << i;
  }
  EXPECT_EQ(echo.connections(), 4);
  EXPECT_TRUE(has(metrics(proxy), R"(outrigger_upstream_connect_failures_total{cluster="backend"})"));
  EXPECT_FALSE(has(metrics(proxy), R"(outrigger_upstream_connect_failures_total{cluster="backend"} 0)"));
}

TEST(TcpProxy, ConnectFailuresEjectTheEndpoint) {
  EchoServer echo;
  Proxy proxy(tcp_config(at(closed_port()) + ", " + at(echo.port()), "",
                         "outlier_detection: { consecutive_gateway_failure: 2, max_ejection_percent: 50 }"));
  for (int i = 0; i < 6; ++i) {
    auto s = Socket::connect(proxy.port("tcp"));
    ASSERT_TRUE(s.send("ping"));
    EXPECT_EQ(s.read_bytes(4), "ping") << i;
  }
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), R"(outrigger_outlier_ejections_total{cluster="backend"} 1)"); }))
      << metrics(proxy);
}

TEST(TcpProxy, MaxConnectionsRefusesTheConnectionBeyondIt) {
  EchoServer echo;
  Proxy proxy(tcp_config(at(echo.port()), "", "circuit_breakers: { max_connections: 1 }"));
  auto first = Socket::connect(proxy.port("tcp"));
  ASSERT_TRUE(first.send("one"));
  EXPECT_EQ(first.read_bytes(3), "one");
  auto second = Socket::connect(proxy.port("tcp"));
  second.send("two");
  EXPECT_EQ(second.read_until_close(3s), "");  // closed, nothing relayed
  EXPECT_TRUE(eventually([&] {
    return has(metrics(proxy), R"(outrigger_tunnel_refused_total{direction="inbound",listener="tcp",kind="tcp"} 1)");
  }));
  ASSERT_TRUE(first.send("still"));
  EXPECT_EQ(first.read_bytes(5), "still");
  EXPECT_EQ(echo.connections(), 1);
}

TEST(TcpProxy, AnIdleTunnelClosesAfterTheTunnelIdleTimeout) {
  EchoServer echo;
  Proxy proxy(tcp_config(at(echo.port()), "tunnel_idle_timeout: 200ms"));
  auto s = Socket::connect(proxy.port("tcp"));
  ASSERT_TRUE(s.send("x"));
  EXPECT_EQ(s.read_bytes(1), "x");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(s.closed_by_peer(3s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_TRUE(eventually([&] {
    return has(metrics(proxy), R"(outrigger_tunnel_idle_timeouts_total{direction="inbound",listener="tcp",kind="tcp"} 1)");
  }));
  EXPECT_TRUE(eventually([&] { return echo.open_connections() == 0; }));
}

TEST(TcpProxy, EachConnectionIsOneAccessLogLineWhenItCloses) {
  EchoServer echo;
  TempDir dir;
  {
    Proxy proxy(tcp_config(at(echo.port()), "", "", "access_log: { path: " + dir.file("access.log") + ", format: json }"));
    auto s = Socket::connect(proxy.port("tcp"));
    ASSERT_TRUE(s.send("12345"));
    s.shutdown_write();
    EXPECT_EQ(s.read_until_close(), "12345");
    EXPECT_EQ(proxy.drain_and_wait(), 0);
  }  // the server and its access log are gone: everything is flushed
  const auto line = slurp(dir.file("access.log"));
  ASSERT_FALSE(line.empty());
  const auto v = json::parse(line).as_object();
  EXPECT_EQ(v.at("protocol").as_string(), "TCP");
  EXPECT_EQ(v.at("listener").as_string(), "tcp");
  EXPECT_EQ(v.at("cluster").as_string(), "backend");
  EXPECT_EQ(v.at("upstream_host").as_string(), at(echo.port()));
  EXPECT_EQ(v.at("bytes_received").as_int64(), 5);
  EXPECT_EQ(v.at("bytes_sent").as_int64(), 5);
  EXPECT_EQ(v.at("error").as_string(), "");
}

TEST(TcpProxy, RbacRefusesAClientNoBindingAllows) {
  EchoServer echo;
  // Only 10.0.0.0/8 may connect; loopback clients are refused. A role with
  // methods or paths (HTTP only) grants no TCP connection either.
  Proxy proxy(tcp_config(at(echo.port()),
                         R"(filters:
      - { type: rbac, roles: { web: [{ paths: ["/api/*"] }], any: [{}] },
          bindings: [{ role: web, principals: [{ any: true }] }, { role: any, principals: [{ source_ip: 10.0.0.0/8 }] }] })"));
  auto s = Socket::connect(proxy.port("tcp"));
  s.send("hi");
  EXPECT_EQ(s.read_until_close(3s), "");
  EXPECT_EQ(echo.connections(), 0);
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), R"(outrigger_rbac_decisions_total{direction="inbound",listener="tcp",decision="denied",policy="default"} 1)"); }))
      << metrics(proxy);
}

TEST(TcpProxy, TwoOutriggersWrapTcpInMutualTls) {
  EchoServer echo;
  TestPki pki;
  const auto inbound_cert = pki.issue("inbound", {.uris = {"spiffe://cluster.local/ns/db/sa/db"}});
  const auto outbound_cert = pki.issue("outbound", {.uris = {"spiffe://cluster.local/ns/shop/sa/web"}});
  TempDir dir;
  // The inbound Outrigger terminates mTLS and checks who the client is.
  std::optional<Proxy> inbound;
  inbound.emplace(tcp_config(at(echo.port()),
                           "tls: { cert: " + inbound_cert.cert + ", key: " + inbound_cert.key + ", ca: " + pki.ca_path() +
                               " }\n    filters:\n      - { type: rbac, roles: { all: [{}] }, bindings: [{ role: all, "
                               "principals: [{ identity: \"spiffe://cluster.local/ns/shop/*\" }] }] }",
                           "", "access_log: { path: " + dir.file("in.log") + ", format: json }"));
  // The outbound one wraps the application's plain TCP in it.
  Proxy outbound(tcp_config(at(inbound->port("tcp")), "",
                            "tls: { cert: " + outbound_cert.cert + ", key: " + outbound_cert.key + ", ca: " +
                                pki.ca_path() + ", verify_identity: [\"spiffe://cluster.local/ns/db/*\"] }"));
  auto s = Socket::connect(outbound.port("tcp"));
  ASSERT_TRUE(s.send("SELECT 1;"));
  EXPECT_EQ(s.read_bytes(9), "SELECT 1;");
  s.shutdown_write();
  EXPECT_EQ(s.read_until_close(), "");
  EXPECT_TRUE(has(metrics(*inbound), R"(outrigger_tls_handshakes_total{side="downstream",listener="tcp",cluster=""} 1)"))
      << metrics(*inbound);
  // A plain client on the inbound side gets nothing through.
  auto plain = Socket::connect(inbound->port("tcp"));
  plain.send("SELECT 2;");
  EXPECT_EQ(plain.read_until_close(3s), "");
  EXPECT_EQ(echo.connections(), 1);
  EXPECT_EQ(inbound->drain_and_wait(), 0);
  inbound.reset();  // the server and its access log are gone: everything is flushed
  // Two lines: the mTLS client's (its identity, its 9 bytes each way) and the plain one's.
  const auto log = slurp(dir.file("in.log"));
  EXPECT_NE(log.find(R"("bytes_received":9,"bytes_sent":9)"), std::string::npos) << log;
  EXPECT_NE(log.find(R"("peer_identity":"spiffe://cluster.local/ns/shop/sa/web")"), std::string::npos) << log;
  EXPECT_NE(log.find(R"("error":"tls_handshake")"), std::string::npos) << log;
}

TEST(TcpProxy, AnHttpListenerWithTlsTakesAnotherOutriggersTcpByAlpn) {
  // One inbound port for everything, as a sidecar has it: HTTPS from
  // clients through the routes, and another Outrigger's TCP in mTLS, told
  // apart by the ALPN name the outbound side offers ("outrigger-tcp").
  EchoServer echo;
  FakeUpstream web;
  TestPki pki;
  const auto inbound_cert = pki.issue("inbound", {.uris = {"spiffe://cluster.local/ns/db/sa/db"}, .dns = {"db.test"}});
  const auto outbound_cert = pki.issue("outbound", {.uris = {"spiffe://cluster.local/ns/shop/sa/web"}});
  Proxy inbound(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
listeners:
  - name: ingress
    address: 127.0.0.1:0
    tls: { cert: {CERT}, key: {KEY}, ca: {CA}, mode: permissive }
    cluster: db
    routes: [{ match: { prefix: / }, cluster: web }]
clusters:
  - { name: db, endpoints: [127.0.0.1:{ECHO}] }
  - { name: web, endpoints: [127.0.0.1:{WEB}] }
)",
                     {{"CERT", inbound_cert.cert}, {"KEY", inbound_cert.key}, {"CA", pki.ca_path()},
                      {"ECHO", std::to_string(echo.port())}, {"WEB", std::to_string(web.port())}}));
  Proxy outbound(tcp_config(at(inbound.port("ingress")), "",
                            "tls: { cert: " + outbound_cert.cert + ", key: " + outbound_cert.key + ", ca: " +
                                pki.ca_path() + " }"));
  auto s = Socket::connect(outbound.port("tcp"));
  ASSERT_TRUE(s.send("PING\r\n"));
  EXPECT_EQ(s.read_bytes(6), "PING\r\n");
  s.shutdown_write();
  EXPECT_EQ(s.read_until_close(), "");  // the half-close went through TLS and back
  EXPECT_EQ(echo.connections(), 1);
  EXPECT_EQ(web.requests(), 0);
  EXPECT_TRUE(eventually([&] {
    return has(metrics(inbound), R"(outrigger_tunnels_total{direction="inbound",listener="ingress",kind="tcp"} 1)");
  })) << metrics(inbound);
  // A plain HTTP client on the same port still gets HTTP (permissive mode).
  auto res = http_get(inbound.port("ingress"), "/x");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "GET /x 0");
}

TEST(TcpProxy, DrainRefusesNewConnectionsAndEndsOpenTunnelsAtTheDrainTimeout) {
  EchoServer echo;
  Proxy proxy(tcp_config(at(echo.port()), "", "", "drain_timeout: 500ms"));
  const auto port = proxy.port("tcp");
  auto s = Socket::connect(port);
  ASSERT_TRUE(s.send("a"));
  EXPECT_EQ(s.read_bytes(1), "a");
  const auto start = std::chrono::steady_clock::now();
  std::thread drain([&] { EXPECT_EQ(proxy.drain_and_wait(5s), 0); });
  // New connections are refused...
  EXPECT_TRUE(eventually([&] {
    auto c = Socket::connect(port);
    return !c.valid() || !c.send("c") || c.read_until_close(300ms).empty();
  }));
  // ... the open tunnel still works while the drain runs...
  ASSERT_TRUE(s.send("b"));
  EXPECT_EQ(s.read_bytes(1), "b");
  // ... and is closed at the drain timeout, when the proxy exits.
  EXPECT_TRUE(s.closed_by_peer(3s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 400ms);
  drain.join();
}

}  // namespace
