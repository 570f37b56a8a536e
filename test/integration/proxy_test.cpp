// HTTP/1.1 proxying as a client sees it, through a real Outrigger on loopback.
#include <gtest/gtest.h>

#include "support/net.hpp"

namespace {

using namespace testing_support;
namespace bhttp = boost::beast::http;

std::string config_for(std::uint16_t upstream, const std::string& extra_routes = "", int workers = 1) {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: {WORKERS}
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes:
{EXTRA}      - name: api
        match: { prefix: /api/ }
        cluster: app
        timeout: 2s
      - name: hello
        match: { path: /hello }
        direct_response: { status: 200, body: "hi\n" }
clusters:
  - name: app
    endpoints: [127.0.0.1:{UP}]
  - name: other
    endpoints: [127.0.0.1:{UP}]
)",
              {{"UP", std::to_string(upstream)}, {"EXTRA", extra_routes}, {"WORKERS", std::to_string(workers)}});
}

TEST(Proxy, ForwardsARequestAndItsResponse) {
  FakeUpstream up;
  Proxy proxy(config_for(up.port()));
  auto res = http_get(proxy.port(), "/api/orders?x=1");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200);
  EXPECT_EQ(res->body(), "GET /api/orders?x=1 0");
}

TEST(Proxy, ReusesOneUpstreamConnectionForKeepAliveClients) {
  FakeUpstream up;
  Proxy proxy(config_for(up.port()));
  auto s = Socket::connect(proxy.port());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(s.send(request_text("GET", "/api/" + std::to_string(i))));
    auto res = s.read_response();
    ASSERT_TRUE(res) << i;
    EXPECT_EQ(res->body(), "GET /api/" + std::to_string(i) + " 0");
  }
  EXPECT_EQ(up.connections(), 1);
  EXPECT_EQ(up.requests(), 5);
}

TEST(Proxy, AnswersPipelinedRequestsInOrder) {
  FakeUpstream up;
  Proxy proxy(config_for(up.port()));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("GET", "/api/1") + request_text("GET", "/hello") + request_text("GET", "/api/3")));
  auto a = s.read_response(), b = s.read_response(), c = s.read_response();
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->body(), "GET /api/1 0");
  EXPECT_EQ(b->body(), "hi\n");
  EXPECT_EQ(c->body(), "GET /api/3 0");
}

TEST(Proxy, StreamsALargeChunkedRequestBodyIntact) {
  FakeUpstream up([](FakeUpstream::Exchange& ex) {
    FakeUpstream::reply(ex, 200, std::to_string(ex.request.body().size()) + ":" +
                                     std::to_string(std::hash<std::string>{}(ex.request.body())));
  });
  Proxy proxy(config_for(up.port()));
  std::string body(1 << 20, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 23);
  std::string chunked;
  for (std::size_t off = 0; off < body.size(); off += 10000) {
    const auto piece = body.substr(off, 10000);
    char size[16];
    std::snprintf(size, sizeof size, "%zx", piece.size());
    chunked.append(size).append("\r\n").append(piece).append("\r\n");
  }
  chunked.append("0\r\n\r\n");
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("POST", "/api/upload", {{"Transfer-Encoding", "chunked"}}, "") + chunked));
  auto res = s.read_response(5s);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), std::to_string(body.size()) + ":" + std::to_string(std::hash<std::string>{}(body)));
  EXPECT_EQ(up.last_request()[bhttp::field::transfer_encoding], "chunked");
}

TEST(Proxy, StreamsAContentLengthRequestBody) {
  FakeUpstream up;
  Proxy proxy(config_for(up.port()));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("PUT", "/api/x", {}, std::string(100000, 'z'))));
  auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "PUT /api/x 100000");
  EXPECT_EQ(up.last_request()[bhttp::field::content_length], "100000");
}

TEST(Proxy, StreamsLargeChunkedAndContentLengthResponses) {
  const std::string big(1 << 20, 'r');
  FakeUpstream up([&](FakeUpstream::Exchange& ex) {
    if (ex.request.target() == "/api/chunked") {
      std::string out = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
      for (std::size_t off = 0; off < big.size(); off += 50000) {
        char size[16];
        std::snprintf(size, sizeof size, "%zx", std::min<std::size_t>(50000, big.size() - off));
        out.append(size).append("\r\n").append(big.substr(off, 50000)).append("\r\n");
      }
      ex.socket.send(out + "0\r\n\r\n");
    } else {
      FakeUpstream::reply(ex, 200, big);
    }
  });
  Proxy proxy(config_for(up.port()));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("GET", "/api/chunked")));
  auto a = s.read_response(5s);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->body(), big);
  EXPECT_TRUE(a->chunked());
  ASSERT_TRUE(s.send(request_text("GET", "/api/length")));
  auto b = s.read_response(5s);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->body(), big);
  EXPECT_EQ((*b)[bhttp::field::content_length], std::to_string(big.size()));
}

TEST(Proxy, SendsContinueBeforeTheBodyWhenTheClientExpectsIt) {
  FakeUpstream up;
  Proxy proxy(config_for(up.port()));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send("POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_EQ(s.read_head(), "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(s.send("hello"));
  auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "POST /api/x 5");
  const auto forwarded = up.last_request();
  EXPECT_EQ(forwarded.find(bhttp::field::expect), forwarded.end());
}

TEST(Proxy, RemovesHopByHopHeadersBothWays) {
  FakeUpstream up([](FakeUpstream::Exchange& ex) {
    ex.socket.send(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: x-up-private\r\nX-Up-Private: 1\r\n"
        "Keep-Alive: timeout=5\r\nUpgrade: h2c\r\nX-Kept: yes\r\n\r\nok");
  });
  Proxy proxy(config_for(up.port()));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("GET", "/api/h",
                                  {{"Connection", "keep-alive, X-Private"},
                                   {"X-Private", "secret"},
                                   {"Keep-Alive", "timeout=5"},
                                   {"TE", "gzip"},
                                   {"Upgrade", "websocket"},
                                   {"Proxy-Connection", "keep-alive"},
                                   {"X-Custom", "kept"}})));
  auto res = s.read_response();
  ASSERT_TRUE(res);
  const auto req = up.last_request();
  for (const char* h : {"connection", "x-private", "keep-alive", "te", "upgrade", "proxy-connection"})
    EXPECT_EQ(req.find(h), req.end()) << h;
  EXPECT_EQ(req["x-custom"], "kept");
  for (const char* h : {"x-up-private", "keep-alive", "upgrade"}) EXPECT_EQ(res->find(h), res->end()) << h;
  EXPECT_EQ((*res)["x-kept"], "yes");
}

TEST(Proxy, KeepsTeTrailersAsTheOnlyHopByHopHeaderItForwards) {
  // RFC 9110 section 10.1.4: TE is hop by hop, but "trailers" says the client takes
  // trailers, which gRPC needs end to end; every other TE coding is dropped.
  FakeUpstream up;
  Proxy proxy(config_for(up.port()));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("GET", "/api/h", {{"TE", "gzip, trailers"}, {"Connection", "TE"}})));
  ASSERT_TRUE(s.read_response());
  const auto req = up.last_request();
  EXPECT_EQ(req["te"], "trailers");
  EXPECT_EQ(req["connection"], "te");
}

TEST(Proxy, AddsForwardingHeadersAndARequestId) {
  FakeUpstream up;
  Proxy proxy(config_for(up.port()));
  ASSERT_TRUE(http_get(proxy.port(), "/api/a", {{"X-Forwarded-For", "10.1.2.3"}}));
  auto first = up.last_request();
  EXPECT_EQ(first["x-forwarded-for"], "10.1.2.3, 127.0.0.1");
  EXPECT_EQ(first["x-forwarded-proto"], "http");
  EXPECT_EQ(first["x-request-id"].size(), 36u);
  ASSERT_TRUE(http_get(proxy.port(), "/api/b", {{"X-Request-Id", "mine-123"}}));
  EXPECT_EQ(up.last_request()["x-request-id"], "mine-123");
  EXPECT_EQ(up.last_request()["x-forwarded-for"], "127.0.0.1");
}

TEST(Proxy, ServesHttp10ClientsWithACloseDelimitedBody) {
  FakeUpstream up([](FakeUpstream::Exchange& ex) {
    ex.socket.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  });
  Proxy proxy(config_for(up.port()));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send("GET /api/old HTTP/1.0\r\n\r\n"));
  const auto start = std::chrono::steady_clock::now();
  const auto raw = s.read_until_close();
  // The upstream keeps its connection open: the end of the chunked body, not
  // the end of the connection, must end the response (regression).
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_EQ(raw.find("chunked"), std::string::npos) << raw;
  EXPECT_NE(raw.find("Connection: close"), std::string::npos) << raw;
  EXPECT_TRUE(raw.ends_with("\r\n\r\nhello")) << raw;
}

TEST(Proxy, SendsNoBodyForHeadAnd204And304) {
  FakeUpstream up([](FakeUpstream::Exchange& ex) {
    if (ex.request.target() == "/api/204") {
      ex.socket.send("HTTP/1.1 204 No Content\r\n\r\n");
    } else if (ex.request.target() == "/api/304") {
      ex.socket.send("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n");
    } else {
      ex.socket.send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");  // HEAD: length, no body
    }
  });
  Proxy proxy(config_for(up.port()));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("HEAD", "/api/head")));
  auto head = s.read_response(3s, true);
  ASSERT_TRUE(head);
  EXPECT_EQ((*head)[bhttp::field::content_length], "5");
  ASSERT_TRUE(s.send(request_text("GET", "/api/204")));
  auto no_content = s.read_response();
  ASSERT_TRUE(no_content);
  EXPECT_EQ(no_content->result_int(), 204);
  ASSERT_TRUE(s.send(request_text("GET", "/api/304")));
  auto not_modified = s.read_response();
  ASSERT_TRUE(not_modified);
  EXPECT_EQ(not_modified->result_int(), 304);
  // The connection is still in step: nothing stray was sent after the bodiless responses.
  ASSERT_TRUE(s.send(request_text("GET", "/hello")));
  auto after = s.read_response();
  ASSERT_TRUE(after);
  EXPECT_EQ(after->body(), "hi\n");
}

TEST(Proxy, RoutesByHostAndByPath) {
  FakeUpstream app, other;
  Proxy proxy(fill(R"(
admin: { enabled: false }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes:
      - { name: by-host, match: { hosts: ["*.other.test"] }, cluster: other }
      - { name: by-path, match: { prefix: /app/ }, cluster: app }
clusters:
  - { name: app, endpoints: [127.0.0.1:{A}] }
  - { name: other, endpoints: [127.0.0.1:{O}] }
)",
                   {{"A", std::to_string(app.port())}, {"O", std::to_string(other.port())}}));
  ASSERT_TRUE(http_get(proxy.port(), "/app/x", {{"Host", "api.other.test:8080"}}));
  EXPECT_EQ(other.requests(), 1);
  ASSERT_TRUE(http_get(proxy.port(), "/app/x", {{"Host", "svc"}}));
  EXPECT_EQ(app.requests(), 1);
}

TEST(Proxy, AnswersNotFoundWhenNoRouteMatches) {
  FakeUpstream up;
  Proxy proxy(config_for(up.port()));
  auto res = http_get(proxy.port(), "/nowhere");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 404);
  EXPECT_EQ((*res)["x-outrigger-error"], "no_route");
  EXPECT_FALSE(res->body().empty());
  EXPECT_EQ(up.requests(), 0);
}

TEST(Proxy, AnswersServiceUnavailableWhenTheEndpointRefusesConnections) {
  Proxy proxy(config_for(closed_port()));
  auto res = http_get(proxy.port(), "/api/x");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 503);
  EXPECT_EQ((*res)["x-outrigger-error"], "connect_failure");
  EXPECT_FALSE(res->body().empty());
}

TEST(Proxy, AnswersBadGatewayWhenTheUpstreamBreaksTheConnection) {
  FakeUpstream up([](FakeUpstream::Exchange& ex) {
    ex.socket.send("HTTP/1.1 200 OK\r\nContent-Le");
    ex.socket.reset();
  });
  Proxy proxy(config_for(up.port()));
  auto res = http_get(proxy.port(), "/api/x");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 502);
  EXPECT_EQ((*res)["x-outrigger-error"], "upstream_reset");
  EXPECT_FALSE(res->body().empty());
}

TEST(Proxy, AnswersGatewayTimeoutWhenUpstreamStalls) {
  std::atomic<bool> release{false};
  FakeUpstream up([&](FakeUpstream::Exchange& ex) {
    for (int i = 0; i < 200 && !release; ++i) std::this_thread::sleep_for(10ms);
    FakeUpstream::reply(ex, 200, "late");
  });
  Proxy proxy(config_for(up.port(), R"(      - name: slow
        match: { prefix: /slow }
        cluster: app
        timeout: 300ms
)"));
  const auto start = std::chrono::steady_clock::now();
  auto res = http_get(proxy.port(), "/slow");
  const auto took = std::chrono::steady_clock::now() - start;
  release = true;
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 504);
  EXPECT_EQ((*res)["x-outrigger-error"], "timeout");
  EXPECT_FALSE(res->body().empty());
  EXPECT_GE(took, 280ms);
  EXPECT_LT(took, 1500ms);
}

TEST(Proxy, RelaysLargeUpstreamResponseHeaders) {
  const std::string cookie(40 * 1024, 'c');
  FakeUpstream up([&](FakeUpstream::Exchange& ex) { FakeUpstream::reply(ex, 200, "ok", {{"Set-Cookie", cookie}}); });
  Proxy proxy(config_for(up.port()));
  auto res = http_get(proxy.port(), "/api/cookie");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200);
  EXPECT_EQ((*res)["set-cookie"].size(), cookie.size());
}

TEST(Proxy, SpreadsConnectionsOverSeveralWorkers) {
  FakeUpstream up;
  Proxy proxy(config_for(up.port(), "", 2));
  std::vector<Socket> clients;
  for (int i = 0; i < 20; ++i) {
    clients.push_back(Socket::connect(proxy.port()));
    ASSERT_TRUE(clients.back().send(request_text("GET", "/api/w")));
  }
  for (auto& c : clients) {
    auto res = c.read_response();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 200);
  }
}

}  // namespace
