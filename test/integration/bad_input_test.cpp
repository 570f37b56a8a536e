// Bad input gets the right 4xx, the connection is closed cleanly, and the
// proxy keeps serving everyone else.
#include <gtest/gtest.h>
#include <poll.h>

#include "support/net.hpp"

namespace {

using namespace testing_support;

class BadInput : public ::testing::Test {
 protected:
  BadInput()
      : proxy_(fill(R"(
admin: { enabled: false }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    max_request_line_bytes: 1024
    max_request_headers_bytes: 4096
    request_headers_timeout: 300ms
    idle_timeout: 300ms
    routes:
      - cluster: app
clusters:
  - { name: app, endpoints: [127.0.0.1:{UP}] }
)",
                    {{"UP", std::to_string(up_.port())}})) {}

  // Sends raw bytes; expects `status`, then a clean close; then checks that a
  // new client is still served.
  void expect_refused(const std::string& bytes, int status) {
    auto s = Socket::connect(proxy_.port());
    ASSERT_TRUE(s.send(bytes));
    auto res = s.read_response();
    ASSERT_TRUE(res) << "no response to: " << bytes.substr(0, 80);
    EXPECT_EQ(res->result_int(), status);
    EXPECT_FALSE((*res)["x-outrigger-error"].empty());
    EXPECT_EQ((*res)[boost::beast::http::field::connection], "close");
    EXPECT_TRUE(s.closed_by_peer());
    auto ok = http_get(proxy_.port(), "/fine");
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->result_int(), 200);
  }

  FakeUpstream up_;
  Proxy proxy_;
};

TEST_F(BadInput, RefusesAnOversizedRequestLine) {
  expect_refused(request_text("GET", "/" + std::string(2000, 'a')), 431);
}

TEST_F(BadInput, RefusesOversizedHeaders) {
  expect_refused(request_text("GET", "/", {{"X-Big", std::string(8000, 'b')}}), 431);
}

TEST_F(BadInput, RefusesGarbage) { expect_refused("THIS IS NOT HTTP\r\n\r\n", 400); }

TEST_F(BadInput, RefusesConflictingContentLengthAndTransferEncoding) {
  expect_refused(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
      "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
      400);
  EXPECT_EQ(up_.requests(), 1);  // only expect_refused's own check request
}

TEST_F(BadInput, RefusesTwoDifferentContentLengths) {
  expect_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400);
  EXPECT_EQ(up_.requests(), 1);
}

TEST_F(BadInput, RefusesHttp11WithoutHost) { expect_refused("GET / HTTP/1.1\r\n\r\n", 400); }

TEST_F(BadInput, CutsAClientThatSendsHeadersTooSlowly) {
  auto s = Socket::connect(proxy_.port());
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(s.send("GET / HTTP/1.1\r\nHost: a\r\n"));
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(s.send("X-Slow: 1\r\n"));  // still trickling, but the deadline does not move
  auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 408);
  EXPECT_TRUE(s.closed_by_peer());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms);
  EXPECT_EQ(up_.requests(), 0);
}

TEST_F(BadInput, ClosesIdleKeepAliveConnections) {
  auto s = Socket::connect(proxy_.port());
  ASSERT_TRUE(s.send(request_text("GET", "/one")));
  ASSERT_TRUE(s.read_response());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(s.closed_by_peer(2s));
  const auto idle = std::chrono::steady_clock::now() - start;
  EXPECT_GE(idle, 250ms);
  EXPECT_LT(idle, 1500ms);
}

// A connection that closes after its response while the client has sent more
// (a request after `Connection: close`, or the rest of a refused one) is not
// reset: a reset can discard the response before the client reads it. The
// proxy shuts its side, reads to the client's FIN, then closes (a lingering
// close). The client here reads only after the proxy has ended its side, when
// a reset would have arrived already.
TEST_F(BadInput, ClosesWithoutAResetWhenTheClientSentMore) {
  for (const bool refused : {false, true}) {
    SCOPED_TRACE(refused ? "refused request" : "Connection: close");
    auto s = Socket::connect(proxy_.port());
    const std::string first = refused ? std::string("THIS IS NOT HTTP\r\n\r\n")
                                      : request_text("GET", "/last", {{"Connection", "close"}});
    ASSERT_TRUE(s.send(first + request_text("GET", "/more") + std::string(64 * 1024, 'x')));
    // Wait for the proxy's end of the connection: a FIN (POLLRDHUP), or a reset (POLLERR/POLLHUP).
    pollfd p{s.fd(), POLLRDHUP, 0};
    ASSERT_EQ(::poll(&p, 1, 3000), 1);
    EXPECT_FALSE(p.revents & (POLLERR | POLLHUP)) << "reset: revents " << p.revents;
    auto res = s.read_response();
    ASSERT_TRUE(res) << "the response was lost";
    EXPECT_EQ(res->result_int(), refused ? 400 : 200);
  }
}

}  // namespace
