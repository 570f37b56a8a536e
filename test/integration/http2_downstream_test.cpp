// HTTP/2 from clients: h2c by prior knowledge, h2 by ALPN, streams through
// the same routes and filters as HTTP/1.1 requests, flow control per
// stream, drain with GOAWAY, reload, and real clients (curl, nghttp).
#include <gtest/gtest.h>

#include <future>

#include "support/h2.hpp"
#include "support/net.hpp"
#include "support/pki.hpp"
#include "support/process.hpp"

namespace {

using namespace testing_support;

std::string config(std::uint16_t app, const std::string& listener_extra = "", const std::string& hello = "hello") {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
drain_timeout: 3s
listeners:
  - name: ingress
    address: 127.0.0.1:0
    {EXTRA}
    routes:
      - { name: hello, match: { path: /hello }, direct_response: { status: 200, body: "{HELLO}" } }
      - { name: app, match: { prefix: / }, cluster: app, timeout: 5s }
clusters:
  - { name: app, endpoints: [127.0.0.1:{APP}] }
)",
              {{"APP", std::to_string(app)}, {"EXTRA", listener_extra}, {"HELLO", hello}});
}

std::string event(const std::string& name, int n) {
  return "outrigger_http2_events_total{side=\"downstream\",listener=\"ingress\",cluster=\"\",event=\"" + name +
         "\"} " + std::to_string(n);
}

// Fails outside CI only when the tool is missing (CI installs it).
#define REQUIRE_PROGRAM(name)                                                        \
  do {                                                                               \
    if (!have_program(name)) {                                                       \
      if (std::getenv("CI")) FAIL() << name << " is not installed";                  \
      GTEST_SKIP() << name << " is not installed (docker/install-deps.sh test)";     \
    }                                                                                \
  } while (0)

TEST(Http2Downstream, PriorKnowledgeStreamsReachAnHttp1Upstream) {
  FakeUpstream app;
  Proxy proxy(config(app.port()));
  H2Client client(proxy.port());
  ASSERT_TRUE(client.connected());
  auto r = client.get("/items?x=1", {{"cookie", "a=1"}, {"cookie", "b=2"}, {"x-custom", "yes"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /items?x=1 0");
  const auto seen = app.last_request();
  EXPECT_EQ(seen.version(), 11);
  EXPECT_EQ(seen["host"], "test.local");            // from :authority
  EXPECT_EQ(seen["cookie"], "a=1; b=2");            // RFC 9113 §8.2.3: one field for HTTP/1.1
  EXPECT_EQ(seen["x-custom"], "yes");
  EXPECT_EQ(seen["x-forwarded-proto"], "http");
  EXPECT_FALSE(r->header("content-length").empty() && r->body.empty());

  auto hello = client.get("/hello");  // a second stream on the same connection
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->body, "hello");
  const auto text = metrics(proxy);
  EXPECT_TRUE(has(text, "outrigger_downstream_requests_total{direction=\"inbound\",listener=\"ingress\",protocol=\"http2\"} 2"))
      << text;
  EXPECT_TRUE(has(text, "outrigger_http2_connections_total{side=\"downstream\",listener=\"ingress\",cluster=\"\"} 1"));
  EXPECT_TRUE(has(text, "outrigger_http2_connections_active{side=\"downstream\",listener=\"ingress\",cluster=\"\"} 1"));
  EXPECT_TRUE(has(text, "outrigger_requests_total{direction=\"inbound\",listener=\"ingress\",route=\"app\",cluster=\"app\",code=\"200\"} 1"));
}

TEST(Http2Downstream, RequestBodiesFlowThroughTheStreamWindow) {
  FakeUpstream app;
  Proxy proxy(config(app.port()));
  H2Client client(proxy.port());
  const std::string body(300 * 1024, 'b');  // several times the 64 KiB stream window
  auto r = client.wait(client.submit("POST", "/upload", {{"content-type", "application/octet-stream"}}, body));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "POST /upload 307200");
  EXPECT_EQ(app.last_request().body(), body);
}

TEST(Http2Downstream, ManyStreamsShareOneConnection) {
  FakeUpstream app;
  Proxy proxy(config(app.port()));
  H2Client client(proxy.port());
  EXPECT_TRUE(client.run_until([&] { return client.server_max_concurrent_streams() == 100; }));
  std::vector<std::int32_t> ids;
  for (int i = 0; i < 50; ++i) ids.push_back(client.submit("GET", "/s" + std::to_string(i)));
  for (int i = 0; i < 50; ++i) {
    auto r = client.wait(ids[static_cast<std::size_t>(i)]);
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->body, "GET /s" + std::to_string(i) + " 0");
  }
}

TEST(Http2Downstream, AStreamWhoseClientStopsReadingHoldsBackOnlyItself) {
  const std::string big(1 << 20, 'x');
  FakeUpstream app([&](FakeUpstream::Exchange& ex) {
    if (ex.request.target() == "/big") return FakeUpstream::reply(ex, 200, big);
    FakeUpstream::echo(ex);
  });
  Proxy proxy(config(app.port()));
  H2Client client(proxy.port(), {.initial_window = 16 * 1024, .manual_window = true});
  const auto big_id = client.submit("GET", "/big");
  // The big stream stops at its 16 KiB window; others go by.
  EXPECT_TRUE(client.run_until([&] { return client.response(big_id).body.size() == 16 * 1024; }));
  for (int i = 0; i < 5; ++i) {
    auto r = client.get("/small" + std::to_string(i));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_EQ(client.response(big_id).body.size(), 16 * 1024u);
  EXPECT_FALSE(client.response(big_id).complete);
  // Window opened: the rest arrives, intact.
  for (int i = 0; i < 64 && !client.response(big_id).complete; ++i) {
    client.open_window(big_id, 1 << 20);
    client.run_until([&] { return client.response(big_id).complete; }, 200ms);
  }
  ASSERT_TRUE(client.response(big_id).complete);
  EXPECT_EQ(client.response(big_id).body, big);
}

TEST(Http2Downstream, HostMustMatchTheAuthorityAndOversizeHeadersGet431) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), "max_request_headers_bytes: 4096"));
  H2Client client(proxy.port());
  auto mismatch = client.get("/x", {{"host", "other.local"}});
  ASSERT_TRUE(mismatch);
  EXPECT_EQ(mismatch->status, 400);
  auto big = client.get("/x", {{"x-big", std::string(8000, 'h')}});
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 431);
  auto fine = client.get("/x");  // the connection serves on
  ASSERT_TRUE(fine);
  EXPECT_EQ(fine->status, 200);
  EXPECT_EQ(app.requests(), 1);
  EXPECT_TRUE(has(metrics(proxy), event("header_list_too_large", 1)));
}

TEST(Http2Downstream, HopByHopHeadersAndTheH2cUpgradeAreNotForwarded) {
  FakeUpstream app;
  Proxy proxy(config(app.port()));
  // RFC 9113 dropped the h2c upgrade: the request is served as HTTP/1.1 and
  // the upgrade offer goes no further.
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("GET", "/up", {{"Host", "a"}, {"Connection", "Upgrade, HTTP2-Settings"},
                                                 {"Upgrade", "h2c"}, {"HTTP2-Settings", "AAMAAABkAAQAAP__"}})));
  auto r = s.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200);
  EXPECT_EQ(r->version(), 11);
  const auto seen = app.last_request();
  EXPECT_EQ(seen.count("upgrade"), 0u);
  EXPECT_EQ(seen.count("http2-settings"), 0u);
}

TEST(Http2Downstream, ListenerProtocolChoosesWhatIsAccepted) {
  FakeUpstream app;
  {
    Proxy only2(config(app.port(), "protocol: http2"));
    H2Client client(only2.port());
    auto r = client.get("/hello");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    auto s = Socket::connect(only2.port());  // HTTP/1.1 is not spoken here
    ASSERT_TRUE(s.send(request_text("GET", "/hello", {{"Host", "a"}})));
    EXPECT_TRUE(s.closed_by_peer());
  }
  {
    Proxy only1(config(app.port(), "protocol: http1"));
    RawH2 raw(only1.port());  // the preface is a malformed HTTP/1.1 request here
    EXPECT_TRUE(raw.closed_by_peer());
    EXPECT_FALSE(http_get(only1.port(), "/hello") == std::nullopt);
  }
}

TEST(Http2Downstream, DrainSendsGoawayInTwoStepsAndLetsStreamsFinish) {
  FakeUpstream app([](FakeUpstream::Exchange& ex) {
    std::this_thread::sleep_for(400ms);
    FakeUpstream::echo(ex);
  });
  Proxy proxy(config(app.port()));
  H2Client client(proxy.port());
  const auto id = client.submit("GET", "/slow");
  ASSERT_TRUE(eventually([&] { return app.connections() == 1; }));
  auto code = std::async(std::launch::async, [&] { return proxy.drain_and_wait(); });
  // First the notice (the highest id), then the real last stream id.
  ASSERT_TRUE(client.run_until([&] { return client.goaway().has_value(); }));
  EXPECT_EQ(client.goaway()->second, 0u);
  auto r = client.wait(id);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(client.run_until([&] { return client.goaway() && client.goaway()->first == id; }));
  EXPECT_TRUE(client.run_until([&] { return client.closed(); }));
  EXPECT_EQ(code.get(), 0);
}

TEST(Http2Downstream, AReloadAppliesToTheNextStreamOfAnOpenConnection) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), "", "v1"));
  H2Client client(proxy.port());
  auto before = client.get("/hello");
  ASSERT_TRUE(before);
  EXPECT_EQ(before->body, "v1");
  ASSERT_TRUE(proxy.server().reload(parse_config(config(app.port(), "", "v2"))).empty());
  auto after = client.get("/hello");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->body, "v2");
}

TEST(Http2Downstream, CurlSpeaksH2cAndH2OverTls) {
  REQUIRE_PROGRAM("curl");
  TestPki pki;
  const auto server = pki.issue("server", {.dns = {"localhost"}});
  FakeUpstream app;
  Proxy plain(config(app.port()));
  auto r = run_program({"curl", "-sS", "--http2-prior-knowledge", "-w", " %{http_version}",
                        "http://127.0.0.1:" + std::to_string(plain.port()) + "/hello"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "hello 2");

  Proxy tls(config(app.port(), "tls: { cert: " + server.cert + ", key: " + server.key + " }"));
  const auto url = "https://localhost:" + std::to_string(tls.port());
  r = run_program({"curl", "-sS", "--http2", "--cacert", pki.ca_path(), "--resolve",
                   "localhost:" + std::to_string(tls.port()) + ":127.0.0.1", "-w", " %{http_version}", "-d", "abc",
                   url + "/post"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "POST /post 3 2");
  // ALPN still offers http/1.1.
  r = run_program({"curl", "-sS", "--http1.1", "--cacert", pki.ca_path(), "--resolve",
                   "localhost:" + std::to_string(tls.port()) + ":127.0.0.1", "-w", " %{http_version}", url + "/hello"});
  EXPECT_EQ(r.out, "hello 1.1");
  EXPECT_EQ(app.last_request()["x-forwarded-proto"], "https");
}

TEST(Http2Downstream, NghttpFetchesWithManyStreams) {
  REQUIRE_PROGRAM("nghttp");
  FakeUpstream app;
  Proxy proxy(config(app.port()));
  const auto base = "http://127.0.0.1:" + std::to_string(proxy.port());
  auto r = run_program({"nghttp", "-n", "-s", "-m", "20", base + "/a"});
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_EQ(app.requests(), 20);
  EXPECT_NE(r.out.find("200"), std::string::npos) << r.out;
}

}  // namespace
