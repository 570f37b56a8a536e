// TLS and mTLS as clients and upstreams see them: certificates made by a test
// CA when the test runs, real handshakes on loopback, identities carried in
// x-forwarded-client-cert, refusals counted by reason, rotation under load.
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <atomic>
#include <thread>

#include "support/net.hpp"
#include "support/pki.hpp"
#include "support/tls_client.hpp"

namespace {

using namespace testing_support;

const std::string kServer = "spiffe://cluster.local/ns/shop/sa/server";
const std::string kWeb = "spiffe://cluster.local/ns/shop/sa/web";

std::string listener_config(std::uint16_t app, const std::string& tls, const std::string& extra = "") {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
file_watch_interval: 50ms
listeners:
  - name: ingress
    address: 127.0.0.1:0
    tls: {TLS}
    {EXTRA}
    routes: [{ cluster: app }]
clusters:
  - { name: app, endpoints: [127.0.0.1:{APP}] }
)",
              {{"APP", std::to_string(app)}, {"TLS", tls}, {"EXTRA", extra}});
}

std::string tls_block(const TestPki::Leaf& leaf, const std::string& ca, const std::string& more = "") {
  return "{ cert: " + leaf.cert + ", key: " + leaf.key + (ca.empty() ? "" : ", ca: " + ca) + more + " }";
}

std::string failures(const std::string& reason, int n) {
  return "outrigger_tls_handshake_failures_total{side=\"downstream\",listener=\"ingress\",cluster=\"\",reason=\"" +
         reason + "\"} " + std::to_string(n);
}

TEST(Tls, MutualTlsCarriesTheClientIdentityUpstream) {
  TestPki pki;
  const auto server = pki.issue("server", {.uris = {kServer}, .dns = {"ingress.local"}});
  const auto web = pki.issue("web", {.uris = {kWeb}});
  FakeUpstream app;
  Proxy proxy(listener_config(app.port(), tls_block(server, pki.ca_path()), "forward_client_cert: sanitize_set"));

  TlsClient client(proxy.port(), {.ca = pki.ca_path(), .cert = web.cert, .key = web.key, .sni = "ingress.local"});
  ASSERT_TRUE(client.connected()) << client.error();
  EXPECT_EQ(client.alpn(), "http/1.1");
  EXPECT_EQ(client.get("/a", {{"x-forwarded-client-cert", "URI=spiffe://forged"}}), 200);
  EXPECT_EQ(client.get("/b", {{"x-forwarded-proto", "http"}}), 200);  // keep-alive over TLS
  EXPECT_EQ(app.last_request()["x-forwarded-proto"], "https");  // what the client's connection was, not its claim
  const std::string xfcc(app.last_request()["x-forwarded-client-cert"]);
  EXPECT_NE(xfcc.find("By=" + kServer + ";Hash="), std::string::npos) << xfcc;
  EXPECT_NE(xfcc.find(";URI=" + kWeb), std::string::npos) << xfcc;
  EXPECT_EQ(xfcc.find("forged"), std::string::npos) << xfcc;

  const auto text = metrics(proxy);
  EXPECT_TRUE(has(text, "outrigger_tls_handshakes_total{side=\"downstream\",listener=\"ingress\",cluster=\"\"} 1"))
      << text;
  EXPECT_TRUE(has(text, "outrigger_downstream_connections_total{direction=\"inbound\",listener=\"ingress\",tls=\"true\"} 1"));
  EXPECT_TRUE(has(text, "outrigger_tls_cert_expiry_timestamp_seconds{listener=\"ingress\",cluster=\"\"} "));
}

TEST(Tls, PlainListenersDropAForgedClientCertHeader) {
  FakeUpstream app;
  Proxy proxy(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - { name: ingress, address: 127.0.0.1:0, forward_client_cert: append_forward, routes: [{ cluster: app }] }
clusters:
  - { name: app, endpoints: [127.0.0.1:{APP}] }
)",
                   {{"APP", std::to_string(app.port())}}));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("GET", "/", {{"x-forwarded-client-cert", "URI=spiffe://forged"},
                                               {"x-forwarded-proto", "https"}})));
  ASSERT_TRUE(s.read_response());
  EXPECT_EQ(app.last_request().count("x-forwarded-client-cert"), 0u);
  EXPECT_EQ(app.last_request()["x-forwarded-proto"], "http");  // an untrusted client's claim is replaced
}

TEST(Tls, RefusesAndCountsBadClientCertificates) {
  TestPki pki, foreign("foreign CA");
  const auto server = pki.issue("server", {.uris = {kServer}});
  const auto web = pki.issue("web", {.uris = {kWeb}});
  const auto stranger = pki.issue("stranger", {.uris = {"spiffe://cluster.local/ns/other/sa/stranger"}});
  const auto expired = pki.issue("expired", {.uris = {kWeb}, .not_before = std::chrono::hours(-48),
                                              .not_after = std::chrono::hours(-24)});
  const auto foreign_web = foreign.issue("web", {.uris = {kWeb}});
  FakeUpstream app;
  Proxy proxy(listener_config(
      app.port(), tls_block(server, pki.ca_path(), ", verify_identity: [\"spiffe://cluster.local/ns/shop/sa/*\"]")));

  // Refused either in the handshake or (TLS 1.3) at the first read: never served.
  auto refused = [&](TlsClient::Options o) {
    o.ca = pki.ca_path();
    TlsClient c(proxy.port(), o);
    return !c.connected() || c.get("/") == -1;
  };
  EXPECT_TRUE(refused({}));
  EXPECT_TRUE(refused({.cert = foreign_web.cert, .key = foreign_web.key}));
  EXPECT_TRUE(refused({.cert = expired.cert, .key = expired.key}));
  EXPECT_TRUE(refused({.cert = stranger.cert, .key = stranger.key}));
  EXPECT_FALSE(refused({.cert = web.cert, .key = web.key}));
  EXPECT_EQ(app.requests(), 1);

  std::string text;
  EXPECT_TRUE(eventually([&] {
    text = metrics(proxy);
    return has(text, failures("no_client_cert", 1)) && has(text, failures("unknown_ca", 1)) &&
           has(text, failures("expired", 1)) && has(text, failures("identity_mismatch", 1)) &&
           has(text, failures("protocol", 0));
  })) << text;
}

TEST(Tls, PlainClientsOnAStrictListenerAreRefused) {
  TestPki pki;
  const auto server = pki.issue("server", {.uris = {kServer}});
  FakeUpstream app;
  Proxy proxy(listener_config(app.port(), tls_block(server, "")));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("GET", "/")));
  EXPECT_TRUE(s.closed_by_peer());
  EXPECT_EQ(app.requests(), 0);
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), failures("protocol", 1)); }));
  // Without a ca, no client certificate is asked for: plain TLS.
  TlsClient c(proxy.port(), {.ca = pki.ca_path()});
  ASSERT_TRUE(c.connected()) << c.error();
  EXPECT_EQ(c.get("/"), 200);
}

TEST(Tls, PermissiveModeServesPlainAndTlsOnOnePort) {
  TestPki pki;
  const auto server = pki.issue("server", {.uris = {kServer}});
  const auto web = pki.issue("web", {.uris = {kWeb}});
  FakeUpstream app;
  Proxy proxy(listener_config(app.port(), tls_block(server, pki.ca_path(), ", mode: permissive"),
                              "forward_client_cert: sanitize_set"));
  EXPECT_EQ(send_gets(proxy.port(), 2), (std::vector<int>{200, 200}));
  EXPECT_EQ(app.last_request().count("x-forwarded-client-cert"), 0u);
  TlsClient c(proxy.port(), {.ca = pki.ca_path(), .cert = web.cert, .key = web.key});
  ASSERT_TRUE(c.connected()) << c.error();
  EXPECT_EQ(c.get("/"), 200);
  EXPECT_NE(std::string(app.last_request()["x-forwarded-client-cert"]).find("URI=" + kWeb), std::string::npos);
  const auto text = metrics(proxy);
  EXPECT_TRUE(has(text, "outrigger_downstream_connections_total{direction=\"inbound\",listener=\"ingress\",tls=\"false\"} 1"))
      << text;
  EXPECT_TRUE(has(text, "outrigger_downstream_connections_total{direction=\"inbound\",listener=\"ingress\",tls=\"true\"} 1"));
}

TEST(Tls, SessionsResume) {
  TestPki pki;
  const auto server = pki.issue("server", {.uris = {kServer}});
  const auto web = pki.issue("web", {.uris = {kWeb}});
  FakeUpstream app;
  Proxy proxy(listener_config(app.port(), tls_block(server, pki.ca_path())));
  SSL_SESSION* session = nullptr;
  {
    TlsClient first(proxy.port(), {.ca = pki.ca_path(), .cert = web.cert, .key = web.key});
    ASSERT_EQ(first.get("/"), 200);  // TLS 1.3 tickets come after the handshake
    session = first.session();
  }
  ASSERT_NE(session, nullptr);
  TlsClient second(proxy.port(), {.ca = pki.ca_path(), .cert = web.cert, .key = web.key, .resume = session});
  EXPECT_EQ(second.get("/"), 200);
  EXPECT_TRUE(second.session_reused());
  SSL_SESSION_free(session);
}

// An outbound listener originates mTLS to an inbound one (the same proxy,
// as two sidecars would), which hands the request to the app.
std::string mesh_config(std::uint16_t app, const TestPki& pki, const TestPki::Leaf& server,
                        const TestPki::Leaf& client, const std::string& expect_identity) {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:{INBOUND}
    tls: { cert: {SCERT}, key: {SKEY}, ca: {CA} }
    forward_client_cert: sanitize_set
    routes: [{ cluster: app }]
  - name: egress
    address: 127.0.0.1:0
    direction: outbound
    routes: [{ cluster: mesh }]
clusters:
  - { name: app, endpoints: [127.0.0.1:{APP}] }
  - name: mesh
    endpoints: [127.0.0.1:{INBOUND}]
    tls: { cert: {CCERT}, key: {CKEY}, ca: {CA}, sni: ingress.local, verify_identity: ["{EXPECT}"] }
)",
              {{"APP", std::to_string(app)},
               {"INBOUND", std::to_string(closed_port())},
               {"SCERT", server.cert},
               {"SKEY", server.key},
               {"CCERT", client.cert},
               {"CKEY", client.key},
               {"CA", pki.ca_path()},
               {"EXPECT", expect_identity}});
}

TEST(Tls, ClustersOriginateMutualTlsOverPooledConnections) {
  TestPki pki;
  const auto server = pki.issue("server", {.uris = {kServer}});
  const auto web = pki.issue("web", {.uris = {kWeb}});
  FakeUpstream app;
  Proxy proxy(mesh_config(app.port(), pki, server, web, kServer));
  EXPECT_EQ(send_gets(proxy.port("egress"), 5), (std::vector<int>(5, 200)));
  EXPECT_NE(std::string(app.last_request()["x-forwarded-client-cert"]).find("URI=" + kWeb), std::string::npos);
  const auto text = metrics(proxy);
  // One handshake for five requests: the upstream TLS connection was pooled.
  EXPECT_TRUE(has(text, "outrigger_tls_handshakes_total{side=\"upstream\",listener=\"\",cluster=\"mesh\"} 1")) << text;
  EXPECT_TRUE(has(text, "outrigger_tls_handshakes_total{side=\"downstream\",listener=\"ingress\",cluster=\"\"} 1"));
}

TEST(Tls, LargeBodiesStreamThroughBothTlsHops) {
  TestPki pki;
  const auto server = pki.issue("server", {.uris = {kServer}});
  const auto web = pki.issue("web", {.uris = {kWeb}});
  const std::string big(3 * 1024 * 1024 + 17, 'b');
  FakeUpstream app([&](FakeUpstream::Exchange& ex) {
    FakeUpstream::reply(ex, 200, ex.request.target() == "/download" ? big : std::to_string(ex.request.body().size()));
  });
  Proxy proxy(mesh_config(app.port(), pki, server, web, kServer));
  // Up: a 1 MiB body through the egress listener, TLS to ingress, then the app.
  auto s = Socket::connect(proxy.port("egress"));
  ASSERT_TRUE(s.send(request_text("POST", "/upload", {{"content-length", std::to_string(1 << 20)}}, std::string(1 << 20, 'u'))));
  auto up = s.read_response(10s);
  ASSERT_TRUE(up);
  EXPECT_EQ(up->body(), std::to_string(1 << 20));
  // Down: 3 MiB from the app through both hops, on the same connection.
  ASSERT_TRUE(s.send(request_text("GET", "/download")));
  auto down = s.read_response(10s);
  ASSERT_TRUE(down);
  EXPECT_EQ(down->body().size(), big.size());
  EXPECT_EQ(down->body(), big);
}

// Health checks and the Zipkin reporter reach a TLS cluster the way requests do.
TEST(Tls, HealthChecksAndSpansGoOverTlsToo) {
  TestPki pki;
  const auto server = pki.issue("server", {.uris = {kServer}});
  const auto web = pki.issue("web", {.uris = {kWeb}});
  std::atomic<int> checks{0}, span_posts{0};
  FakeUpstream app([&](FakeUpstream::Exchange& ex) {
    if (ex.request.target() == "/healthz") ++checks;
    if (ex.request.target() == "/api/v2/spans") ++span_posts;
    FakeUpstream::reply(ex, ex.request.target() == "/api/v2/spans" ? 202 : 200, "ok");
  });
  const auto inbound = closed_port();
  auto tls = "{ cert: " + web.cert + ", key: " + web.key + ", ca: " + pki.ca_path() + ", verify_identity: [\"" +
             kServer + "\"] }";
  Proxy proxy(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
tracing: { service_name: web, collector_cluster: zipkin, flush_interval: 50ms }
listeners:
  - name: ingress
    address: 127.0.0.1:{INBOUND}
    tls: { cert: {SCERT}, key: {SKEY}, ca: {CA} }
    routes: [{ cluster: app }]
  - name: egress
    address: 127.0.0.1:0
    filters: [{ type: tracing }]
    routes: [{ cluster: mesh }]
clusters:
  - { name: app, endpoints: [127.0.0.1:{APP}] }
  - name: mesh
    endpoints: [127.0.0.1:{INBOUND}]
    tls: {TLS}
    health_check: { path: /healthz, interval: 50ms, unhealthy_threshold: 1 }
  - { name: zipkin, endpoints: [127.0.0.1:{INBOUND}], tls: {TLS} }
)",
                   {{"INBOUND", std::to_string(inbound)},
                    {"SCERT", server.cert},
                    {"SKEY", server.key},
                    {"CA", pki.ca_path()},
                    {"APP", std::to_string(app.port())},
                    {"TLS", tls}}));
  EXPECT_TRUE(eventually([&] { return checks.load() >= 2; }));
  EXPECT_TRUE(has(metrics(proxy), "outrigger_endpoint_healthy{cluster=\"mesh\",endpoint=\"127.0.0.1:" +
                                      std::to_string(inbound) + "\"} 1"));
  EXPECT_EQ(send_gets(proxy.port("egress"), 1), (std::vector<int>{200}));
  EXPECT_TRUE(eventually([&] { return span_posts.load() >= 1; }));
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), "outrigger_tracing_spans_sent_total 2"); }));
}

TEST(Tls, AnUpstreamWithTheWrongIdentityIsRefused) {
  TestPki pki;
  const auto server = pki.issue("server", {.uris = {kServer}});
  const auto web = pki.issue("web", {.uris = {kWeb}});
  FakeUpstream app;
  Proxy proxy(mesh_config(app.port(), pki, server, web, "spiffe://cluster.local/ns/shop/sa/reviews"));
  auto res = http_get(proxy.port("egress"), "/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 503);
  EXPECT_EQ((*res)["x-outrigger-error"], "connect_failure");
  EXPECT_EQ(app.requests(), 0);
  EXPECT_TRUE(has(metrics(proxy),
                  "outrigger_tls_handshake_failures_total{side=\"upstream\",listener=\"\",cluster=\"mesh\",reason=\"identity_mismatch\"} 1"));
}

TEST(Tls, RotationUnderLoadLosesNoRequest) {
  TestPki pki;
  SecretVolume volume(pki.dir() + "/secret");
  const auto ca = read_file(pki.ca_path());
  auto [cert1, key1] = pki.issue_pem({.uris = {kServer}});
  volume.update(cert1, key1, ca);
  const auto web = pki.issue("web", {.uris = {kWeb}});
  FakeUpstream app;
  Proxy proxy(listener_config(app.port(), "{ cert: " + volume.cert() + ", key: " + volume.key() + ", ca: " + volume.ca() + " }"));
  const TlsClient::Options client{.ca = pki.ca_path(), .cert = web.cert, .key = web.key};
  const auto first_serial = TlsClient(proxy.port(), client).server_serial();
  ASSERT_FALSE(first_serial.empty());

  // Bounded load: new handshakes and keep-alive requests, for at most 3 s.
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> load;
  for (int t = 0; t < 2; ++t) {
    load.emplace_back([&] {
      const auto until = std::chrono::steady_clock::now() + 3s;
      for (int i = 0; i < 2000 && !stop && std::chrono::steady_clock::now() < until; ++i) {
        TlsClient c(proxy.port(), client);
        for (int k = 0; k < 3; ++k) (c.get("/") == 200 ? ok : failed)++;
      }
    });
  }
  // Load runs before, between and after the swaps: each step waits for more
  // requests to have succeeded.
  auto more_ok = [&](int n) {
    const int target = ok + n;
    return eventually([&] { return ok >= target; });
  };
  EXPECT_TRUE(more_ok(20));
  auto [cert2, key2] = pki.issue_pem({.uris = {kServer}});
  volume.update(cert2, key2, ca);
  EXPECT_TRUE(more_ok(20));
  auto [cert3, key3] = pki.issue_pem({.uris = {kServer}});
  volume.update(cert3, key3, ca);
  EXPECT_TRUE(more_ok(20));
  stop = true;
  for (auto& t : load) t.join();

  EXPECT_GT(ok.load(), 0);
  EXPECT_EQ(failed.load(), 0);
  const auto last_serial = TlsClient(proxy.port(), client).server_serial();
  EXPECT_NE(last_serial, first_serial);
  EXPECT_TRUE(has(metrics(proxy), "outrigger_tls_reloads_total{listener=\"ingress\",cluster=\"\",result=\"success\"} 2"));
}

TEST(Tls, ABrokenNewCertificateKeepsTheOldOneServing) {
  TestPki pki;
  const auto server = pki.issue("server", {.uris = {kServer}});
  const auto web = pki.issue("web", {.uris = {kWeb}});
  FakeUpstream app;
  Proxy proxy(listener_config(app.port(), tls_block(server, pki.ca_path())));
  const TlsClient::Options client{.ca = pki.ca_path(), .cert = web.cert, .key = web.key};
  const auto before = TlsClient(proxy.port(), client).server_serial();
  write_file_atomically(server.cert, "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n");
  EXPECT_TRUE(eventually([&] {
    return has(metrics(proxy), "outrigger_tls_reloads_total{listener=\"ingress\",cluster=\"\",result=\"failure\"} 1");
  }));
  TlsClient after(proxy.port(), client);
  EXPECT_EQ(after.get("/"), 200);
  EXPECT_EQ(after.server_serial(), before);
}

TEST(Tls, AnUnreadableCertificateIsAConfigErrorNamingIt) {
  FakeUpstream app;
  try {
    Proxy proxy(listener_config(app.port(), "{ cert: /nonexistent/tls.crt, key: /nonexistent/tls.key }"));
    FAIL() << "the config was accepted";
  } catch (const std::exception& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("listeners.ingress.tls.cert: cannot use '/nonexistent/tls.crt'"), std::string::npos) << what;
    EXPECT_NE(what.find(":9:"), std::string::npos) << what;  // the line of the tls block
  }
}

}  // namespace
