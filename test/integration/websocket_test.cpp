// WebSocket (and HTTP/1.1 upgrades in general) through Outrigger: real
// clients and servers from Debian's python3-websockets and python3-h2
// (test/tools/ws/ws_peer.py). Echo over HTTP/1.1 (101, then a tunnel) and
// over HTTP/2 (RFC 8441 extended CONNECT toward an HTTP/1.1 upgrade), the
// per-route allow-list, an upgrade the upstream refuses, the tunnel's idle
// timeout, and the tunnel series and access-log line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "support/h2.hpp"
#include "support/net.hpp"
#include "support/pki.hpp"
#include "support/process.hpp"

namespace {

using namespace testing_support;

const std::string kPeer = OUTRIGGER_SOURCE_DIR "/test/tools/ws/ws_peer.py";

bool have_websockets() {
  static const bool ok = run_program({kPython, "-c", "import websockets, h2"}, 20s).exit_code == 0;
  return ok;
}

#define REQUIRE_WEBSOCKETS()                                                                        \
  do {                                                                                              \
    if (!have_websockets())                                                                         \
      GTEST_SKIP() << "python3-websockets and python3-h2 are not importable by " << kPython         \
                   << " (apt-get install python3-websockets python3-h2)";                          \
  } while (0)

// ws_peer.py server: an echo server on 127.0.0.1:0.
class WsServer {
 public:
  WsServer() : child_({kPython, kPeer, "server", dir_.file("port")}, dir_, "ws_server") {
    eventually([&] { return std::filesystem::exists(dir_.file("port")); });
    std::ifstream in(dir_.file("port"));
    in >> port_;
    if (port_ == 0) ADD_FAILURE() << "ws_peer.py server did not start: " << child_.err();
  }
  std::uint16_t port() const { return port_; }

 private:
  TempDir dir_;
  Child child_;
  std::uint16_t port_ = 0;
};

std::string config(std::uint16_t ws_port, const std::string& route_extra = "",
                   const std::string& listener_extra = "", const std::string& log = "/dev/null") {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
access_log: { path: {LOG}, format: json }
listeners:
  - name: ingress
    address: 127.0.0.1:0
    {LISTENER}
    routes:
      - match: { prefix: /plain }
        cluster: ws
        upgrade: []
      - match: { prefix: / }
        cluster: ws
        {ROUTE}
clusters:
  - name: ws
    endpoints: [127.0.0.1:{PORT}]
)",
              {{"PORT", std::to_string(ws_port)}, {"ROUTE", route_extra}, {"LISTENER", listener_extra},
               {"LOG", log}});
}

TEST(WebSocket, EchoesThroughAnHttp1Upgrade) {
  REQUIRE_WEBSOCKETS();
  WsServer ws;
  TempDir dir;
  std::optional<Proxy> owner;
  auto& proxy = owner.emplace(config(ws.port(), "", "", dir.file("access.log")));
  const auto url = "ws://127.0.0.1:" + std::to_string(proxy.port()) + "/chat";
  const auto r = run_program({kPython, kPeer, "client", url, "5"}, 20s);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("ok 6"), std::string::npos) << r.out << r.err;
  // One tunnel, counted with its bytes once it closed, and one access-log line with the 101.
  EXPECT_TRUE(eventually([&] {
    const auto m = metrics(proxy);
    return has(m, R"(outrigger_tunnels_total{direction="inbound",listener="ingress",kind="upgrade"} 1)") &&
           has(m, R"(outrigger_tunnels_active{direction="inbound",listener="ingress",kind="upgrade"} 0)");
  })) << metrics(proxy);
  const auto m = metrics(proxy);
  EXPECT_FALSE(has(m, R"(outrigger_tunnel_received_bytes_total{direction="inbound",listener="ingress",kind="upgrade"} 0)"));
  EXPECT_EQ(proxy.drain_and_wait(), 0);
  owner.reset();  // the server and its access log are gone: everything is flushed
  EXPECT_NE(slurp(dir.file("access.log")).find(R"("response_code":101)"), std::string::npos) << slurp(dir.file("access.log"));
}

TEST(WebSocket, EchoesThroughHttp2ExtendedConnect) {
  REQUIRE_WEBSOCKETS();
  WsServer ws;
  Proxy proxy(config(ws.port()));
  const auto r = run_program({kPython, kPeer, "client-h2", std::to_string(proxy.port()), "/chat"}, 20s);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("status 200"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.out.find("echo hello over h2"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.out.find("echo second"), std::string::npos) << r.out << r.err;
  // The client's END_STREAM is a half-close: the server closes and the stream ends.
  EXPECT_NE(r.out.find("ended"), std::string::npos) << r.out << r.err;
  EXPECT_TRUE(eventually([&] {
    return has(metrics(proxy), R"(outrigger_tunnels_total{direction="inbound",listener="ingress",kind="upgrade"} 1)");
  }));
}

TEST(WebSocket, EchoesThroughTwoOutriggersOverTls) {
  // client -ws-> Outrigger A -wss (cluster tls, protocol auto)-> Outrigger B -ws-> server:
  // A asks B for HTTP/1.1 by ALPN (an upgrade is HTTP/1.1's), B tunnels over TLS.
  REQUIRE_WEBSOCKETS();
  WsServer ws;
  TestPki pki;
  const auto b_cert = pki.issue("b", {.dns = {"ws.test"}});
  Proxy b(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
listeners:
  - name: ingress
    address: 127.0.0.1:0
    tls: { cert: {CERT}, key: {KEY} }
    routes: [{ match: { prefix: / }, cluster: ws }]
clusters:
  - { name: ws, endpoints: [127.0.0.1:{PORT}] }
)",
               {{"CERT", b_cert.cert}, {"KEY", b_cert.key}, {"PORT", std::to_string(ws.port())}}));
  Proxy a(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes: [{ match: { prefix: / }, cluster: b }]
clusters:
  - name: b
    endpoints: [127.0.0.1:{PORT}]
    protocol: auto
    tls: { ca: {CA}, sni: ws.test }
)",
               {{"CA", pki.ca_path()}, {"PORT", std::to_string(b.port())}}));
  const auto url = "ws://127.0.0.1:" + std::to_string(a.port()) + "/chat";
  const auto r = run_program({kPython, kPeer, "client", url, "3"}, 20s);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("ok 4"), std::string::npos) << r.out << r.err;
  EXPECT_TRUE(eventually([&] {
    return has(metrics(b), R"(outrigger_tunnels_total{direction="inbound",listener="ingress",kind="upgrade"} 1)");
  })) << metrics(b);
}

TEST(WebSocket, ARouteThatDoesNotAllowTheUpgradeAnswers403) {
  FakeUpstream upstream;
  Proxy proxy(config(upstream.port()));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("GET", "/plain/x",
                                  {{"Host", "x"}, {"Connection", "Upgrade"}, {"Upgrade", "websocket"},
                                   {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}, {"Sec-WebSocket-Version", "13"}})));
  const auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 403);
  EXPECT_EQ((*res)["x-outrigger-error"], "upgrade_not_allowed");
  EXPECT_EQ(upstream.requests(), 0);
}

TEST(WebSocket, AnUpgradeTheUpstreamRefusesIsAnOrdinaryResponse) {
  FakeUpstream upstream([](FakeUpstream::Exchange& ex) { FakeUpstream::reply(ex, 426, "no\n"); });
  Proxy proxy(config(upstream.port()));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("GET", "/chat",
                                  {{"Host", "x"}, {"Connection", "Upgrade"}, {"Upgrade", "websocket"},
                                   {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}, {"Sec-WebSocket-Version", "13"}})));
  const auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 426);
  EXPECT_EQ(res->body(), "no\n");
  // The upstream saw the upgrade asked for (the two hop-by-hop fields kept for it).
  const auto req = upstream.last_request();
  EXPECT_EQ(req[boost::beast::http::field::upgrade], "websocket");
  EXPECT_EQ(req[boost::beast::http::field::connection], "upgrade");
  EXPECT_FALSE(req["x-request-id"].empty());
}

TEST(WebSocket, AnUpgradeWithABodyIsServedAsAPlainRequest) {
  FakeUpstream upstream;
  Proxy proxy(config(upstream.port()));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("POST", "/chat", {{"Host", "x"}, {"Connection", "Upgrade"}, {"Upgrade", "websocket"}},
                                  "hello")));
  const auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200);
  EXPECT_EQ(res->body(), "POST /chat 5");
  EXPECT_TRUE(upstream.last_request()[boost::beast::http::field::upgrade].empty());
}

TEST(WebSocket, AnH2cUpgradeIsIgnoredAndTheRequestServedAsHttp1) {
  FakeUpstream upstream;
  Proxy proxy(config(upstream.port()));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("GET", "/chat", {{"Host", "x"}, {"Connection", "Upgrade, HTTP2-Settings"},
                                                   {"Upgrade", "h2c"}, {"HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"}})));
  const auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200);
  EXPECT_TRUE(upstream.last_request()[boost::beast::http::field::upgrade].empty());
}

TEST(WebSocket, AnIdleTunnelIsClosedAfterTheTunnelIdleTimeout) {
  REQUIRE_WEBSOCKETS();
  WsServer ws;
  Proxy proxy(config(ws.port(), "", "tunnel_idle_timeout: 300ms"));
  const auto url = "ws://127.0.0.1:" + std::to_string(proxy.port()) + "/idle";
  const auto r = run_program({kPython, kPeer, "client-idle", url, "10"}, 20s);
  EXPECT_NE(r.out.find("closed"), std::string::npos) << r.out << r.err;
  EXPECT_TRUE(eventually([&] {
    return has(metrics(proxy), R"(outrigger_tunnel_idle_timeouts_total{direction="inbound",listener="ingress",kind="upgrade"} 1)");
  })) << metrics(proxy);
}

}  // namespace
