// Translation between HTTP/1.1 and HTTP/2 (RFC 9113 §8): trailers both
// ways (HTTP/1.1 chunked trailers and HTTP/2 trailing HEADERS), TE:
// trailers, :authority and Host, hop-by-hop fields, whichever side speaks
// which protocol.
#include <gtest/gtest.h>

#include "support/h2.hpp"
#include "support/net.hpp"

namespace {

using namespace testing_support;

std::string config(std::uint16_t app, const std::string& cluster_extra = "") {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes: [{ cluster: app, timeout: 5s }]
clusters:
  - { name: app, endpoints: [127.0.0.1:{APP}] {EXTRA} }
)",
              {{"APP", std::to_string(app)}, {"EXTRA", cluster_extra}});
}

// A chunked HTTP/1.1 response with trailers.
void chunked_with_trailers(FakeUpstream::Exchange& ex) {
  ex.socket.send(
      "HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status\r\n\r\n"
      "5\r\nhello\r\n0\r\ngrpc-status: 0\r\ngrpc-message: fine\r\n\r\n");
}

TEST(Http2Translation, Http1ChunkedTrailersReachAnHttp2Client) {
  FakeUpstream app(chunked_with_trailers);
  Proxy proxy(config(app.port()));
  H2Client client(proxy.port());
  auto r = client.get("/t");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
  EXPECT_EQ(r->trailer("grpc-status"), "0");
  EXPECT_EQ(r->trailer("grpc-message"), "fine");
  EXPECT_EQ(r->header("grpc-status"), "");  // a trailer, not a header
  EXPECT_EQ(r->header("trailer"), "");      // hop-by-hop
}

TEST(Http2Translation, Http1ChunkedTrailersReachAnHttp1Client) {
  FakeUpstream app(chunked_with_trailers);
  Proxy proxy(config(app.port()));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("GET", "/t", {{"Host", "a"}, {"TE", "trailers"}})));
  auto r = s.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body(), "hello");
  EXPECT_EQ((*r)["grpc-status"], "0");  // Beast puts the trailers with the fields
  EXPECT_EQ(app.last_request()["te"], "trailers");
  EXPECT_EQ(app.last_request()["connection"], "te");
}

TEST(Http2Translation, Http2RequestTrailersBecomeChunkedTrailers) {
  FakeUpstream app;
  Proxy proxy(config(app.port()));
  H2Client client(proxy.port());
  auto r = client.wait(client.submit("POST", "/up", {{"te", "trailers"}}, std::string("abc"), {{"x-checksum", "900150983cd24fb0"}}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  const auto bytes = app.bytes_received();
  EXPECT_NE(bytes.find("Transfer-Encoding: chunked\r\n"), std::string::npos) << bytes;
  EXPECT_NE(bytes.find("3\r\nabc\r\n0\r\nx-checksum: 900150983cd24fb0\r\n\r\n"), std::string::npos) << bytes;
}

TEST(Http2Translation, Http1ChunkedRequestTrailersPassThrough) {
  FakeUpstream app;
  Proxy proxy(config(app.port()));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send("POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3\r\nabc\r\n0\r\nx-sum: 1\r\n\r\n"));
  auto r = s.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200);
  EXPECT_NE(app.bytes_received().find("0\r\nx-sum: 1\r\n\r\n"), std::string::npos) << app.bytes_received();
}

TEST(Http2Translation, ManyResponseFieldsKeepTheirNamesLowerCased) {
  // More fields than the encoder keeps on its stack, known to Beast and not.
  FakeUpstream app([](FakeUpstream::Exchange& ex) {
    std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: no-store\r\n";
    for (int i = 0; i < 40; ++i) head += "X-Field-Number-" + std::to_string(i) + ": v" + std::to_string(i) + "\r\n";
    ex.socket.send(head + "\r\nok");
  });
  Proxy proxy(config(app.port()));
  H2Client client(proxy.port());
  auto r = client.get("/many");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("cache-control"), "no-store");
  for (int i = 0; i < 40; ++i)
    EXPECT_EQ(r->header("x-field-number-" + std::to_string(i)), "v" + std::to_string(i)) << i;
}

}  // namespace
