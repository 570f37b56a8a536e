// Request framing a sidecar must not get wrong (request smuggling): what the
// client sees, and what the upstream sees, for requests whose framing two
// parsers could read differently. Each refused request gets its status, the
// connection closes, and not a byte of it reaches the upstream.
#include <gtest/gtest.h>

#include "support/net.hpp"

namespace {

using namespace testing_support;

std::string config_for(std::uint16_t upstream, const std::string& listener_extra = "") {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
{EXTRA}    routes:
      - { name: admin, match: { prefix: /admin }, direct_response: { status: 403, body: "admin\n" } }
      - { name: api, match: { prefix: / }, cluster: app }
clusters:
  - { name: app, endpoints: [127.0.0.1:{UP}] }
)",
              {{"UP", std::to_string(upstream)}, {"EXTRA", listener_extra}});
}

struct Framing : ::testing::Test {
  FakeUpstream up;
  Proxy proxy{config_for(up.port())};

  // Sends raw bytes on a fresh connection; the status of the one response
  // (0: none), and whether the proxy closed the connection after it.
  std::pair<int, bool> send(const std::string& raw) {
    auto s = Socket::connect(proxy.port());
    if (!s.send(raw)) return {0, true};
    auto res = s.read_response();
    return {res ? res->result_int() : 0, s.closed_by_peer()};
  }

  // The request is refused with `status` and nothing of it is forwarded.
  ::testing::AssertionResult refused(const std::string& raw, int status = 400) {
    const auto [got, closed] = send(raw);
    if (got != status) return ::testing::AssertionFailure() << "status " << got << " for " << printable(raw);
    if (!closed) return ::testing::AssertionFailure() << "connection left open for " << printable(raw);
    if (!up.bytes_received().empty())
      return ::testing::AssertionFailure() << "forwarded: " << printable(up.bytes_received());
    return ::testing::AssertionSuccess();
  }

  static std::string printable(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
      if (c == '\r') {
        out += "\\r";
      } else if (c == '\n') {
        out += "\\n";
      } else if (c < 0x20 || c >= 0x7f) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "\\x%02x", c);
        out += hex;
      } else {
        out += static_cast<char>(c);
      }
    }
    return out;
  }
};

const std::string kPost = "POST /api HTTP/1.1\r\nHost: a\r\n";

TEST_F(Framing, RefusesTransferEncodingsOtherThanAFinalChunked) {
  for (const std::string te : {"chunked, identity", "identity", "gzip", "chunked, chunked", "chunked,", ",chunked",
                               "\"chunked\"", "xchunked", "chunked;q=1", "chunk"}) {
    EXPECT_TRUE(refused(kPost + "Transfer-Encoding: " + te + "\r\n\r\n5\r\nhello\r\n0\r\n\r\n")) << te;
  }
  // Two field lines are one list: chunked twice, or not last.
  EXPECT_TRUE(refused(kPost + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"));
  EXPECT_TRUE(refused(kPost + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n"));
  // A coding the proxy cannot undo before it re-chunks the body.
  EXPECT_TRUE(refused(kPost + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501));
  EXPECT_EQ(up.requests(), 0);
}

TEST_F(Framing, RefusesObfuscatedTransferEncodingsInsteadOfFramingByLength) {
  // Bytes outside ASCII, control characters and odd whitespace around
  // "chunked", each beside a Content-Length that would frame the body
  // otherwise: a desync if one side honours the Transfer-Encoding.
  for (const std::string te : {"\xff" "chunked", "chunked\xff", "\x85" "chunked", "\xa0" "chunked", "\x0b" "chunked",
                               "\x0c" "chunked", "chunked\r", "\x7f" "chunked", "c h u n k e d"}) {
    EXPECT_TRUE(refused(kPost + "Transfer-Encoding: " + te + "\r\nContent-Length: 5\r\n\r\nhello"))
        << printable(te);
  }
  EXPECT_TRUE(refused(kPost + "Transfer-Encoding: ch" + std::string(1, '\0') + "unked\r\nContent-Length: 5\r\n\r\nhello"));
  for (const std::string name : {"Transfer-Encoding ", "Transfer-Encoding\t", " Transfer-Encoding", "Transfer_Encoding",
                                 "transfer_encoding", "Transfer-\xff" "Encoding"}) {
    EXPECT_TRUE(refused(kPost + name + ": chunked\r\nContent-Length: 5\r\n\r\nhello")) << printable(name);
  }
  EXPECT_TRUE(refused(kPost + "Content_Length: 5\r\n\r\nhello"));
}

TEST_F(Framing, NoByteAroundChunkedMakesTheUpstreamFrameTheBodyOtherwise) {
  // Each byte before, after and inside "chunked", beside a Content-Length that
  // frames the body otherwise: read as chunked the body is empty and a second
  // request follows; read by length it is one body. Only the plain word (and
  // the whitespace a field value may have around it) frames as chunked; every
  // other spelling is refused, so no request hides in a body.
  const std::string chunked = "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string length = std::to_string(chunked.size() - 2);
  int forwarded = 0;
  for (int b = 0; b < 256; ++b) {
    if (b == '\n') continue;
    const std::string byte(1, static_cast<char>(b));
    for (const auto& value : {byte + "chunked", "chunked" + byte, "chun" + byte + "ked"}) {
      const auto [status, closed] =
          send(kPost + "Transfer-Encoding: " + value + "\r\nContent-Length: " + length + "\r\n\r\n" + chunked);
      if (status == 400 || status == 501) continue;
      ++forwarded;
      ADD_FAILURE() << "status " << status << " for Transfer-Encoding: " << printable(value);
    }
  }
  EXPECT_EQ(forwarded, 0);
  EXPECT_EQ(up.requests(), 0);
  EXPECT_TRUE(up.bytes_received().empty());

  // Alone, only "chunked" with the whitespace a field may carry around it
  // frames as chunked; every other spelling is refused.
  for (int b = 0; b < 256; ++b) {
    if (b == '\n') continue;
    const std::string byte(1, static_cast<char>(b));
    const bool blank = b == ' ' || b == '\t';
    for (const auto& [value, valid] : {std::pair{byte + "chunked", blank}, std::pair{"chunked" + byte, blank},
                                       std::pair{"chun" + byte + "ked", false}}) {
      const auto before = up.requests();
      auto s = Socket::connect(proxy.port());
      ASSERT_TRUE(s.send(kPost + "Transfer-Encoding: " + value + "\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
      auto res = s.read_response();
      ASSERT_TRUE(res) << printable(value);
      if (valid) {
        EXPECT_EQ(res->result_int(), 200) << printable(value);
        EXPECT_EQ(res->body(), "POST /api 5") << printable(value);
        EXPECT_EQ(up.requests(), before + 1);
      } else {
        EXPECT_TRUE(res->result_int() == 400 || res->result_int() == 501) << printable(value);
        EXPECT_EQ(up.requests(), before) << printable(value);
      }
    }
  }
}

TEST_F(Framing, RefusesContentLengthsThatAreNotOneNumber) {
  for (const std::string fields : {"Content-Length: 5, 5\r\n", "Content-Length: 5\r\nContent-Length: 5\r\n",
                                   "Content-Length: 5\r\nContent-Length: 6\r\n", "Content-Length: +5\r\n",
                                   "Content-Length: -5\r\n", "Content-Length: 0x5\r\n", "Content-Length: 5 5\r\n",
                                   "Content-Length: 99999999999999999999999\r\n",
                                   "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                                   "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"}) {
    EXPECT_TRUE(refused(kPost + fields + "\r\nhello")) << printable(fields);
  }
}

TEST_F(Framing, RefusesAnHttp10RequestWithTransferEncoding) {
  EXPECT_TRUE(refused("POST /api HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
}

TEST_F(Framing, RefusesMalformedChunksItAlreadyHolds) {
  for (const std::string body : {"+5\r\nhello\r\n0\r\n\r\n", "-5\r\nhello\r\n0\r\n\r\n", "0x5\r\nhello\r\n0\r\n\r\n",
                                 "5_0\r\nhello\r\n0\r\n\r\n", "5\rhello\r\n0\r\n\r\n", "5\nhello\r\n0\r\n\r\n",
                                 "fffffffffffffffff1\r\nhello\r\n0\r\n\r\n", "zz\r\nhello\r\n0\r\n\r\n",
                                 "5\r\nhelloEXTRA\r\n0\r\n\r\n", "5 \r\nhello\r\n0\r\n\r\n", "\r\n5\r\nhello\r\n0\r\n\r\n"}) {
    EXPECT_TRUE(refused(kPost + "Transfer-Encoding: chunked\r\n\r\n" + body)) << printable(body);
  }
}

TEST_F(Framing, ResetsTheUpstreamWhenChunksBreakMidStream) {
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(kPost + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"));
  // The header and the good chunk are on their way upstream...
  ASSERT_TRUE(eventually([&] { return up.bytes_received().find("hello") != std::string::npos; }));
  // ... then the framing breaks.
  ASSERT_TRUE(s.send("zz\r\nmore\r\n0\r\n\r\n"));
  auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 400);
  EXPECT_TRUE(s.closed_by_peer());
  // The upstream's connection is closed without the last chunk: it never saw a complete request.
  EXPECT_TRUE(eventually([&] { return up.open_connections() == 0; }));
  EXPECT_EQ(up.requests(), 0);
  EXPECT_EQ(up.bytes_received().find("\r\n0\r\n\r\n"), std::string::npos) << printable(up.bytes_received());
}

TEST_F(Framing, RefusesTwoHostsOrAHostThatDisagreesWithTheTarget) {
  EXPECT_TRUE(refused("GET /api HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"));
  EXPECT_TRUE(refused("GET /api HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"));
  EXPECT_TRUE(refused("GET /api HTTP/1.1\r\nHost: user@a\r\n\r\n"));
  EXPECT_TRUE(refused("GET /api HTTP/1.1\r\nHost: a/b\r\n\r\n"));
  EXPECT_TRUE(refused("GET http://evil.example/api HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_TRUE(refused("GET ftp://a/api HTTP/1.1\r\nHost: a\r\n\r\n"));
}

TEST_F(Framing, TakesAnAbsoluteFormTargetAsOriginForm) {
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send("GET http://a/api/x?q=1 HTTP/1.1\r\nHost: a\r\n\r\n"));
  auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "GET /api/x?q=1 0");
  EXPECT_EQ(up.last_request()[boost::beast::http::field::host], "a");
}

TEST_F(Framing, ForwardsWellFramedBodiesWithItsOwnFraming) {
  auto s = Socket::connect(proxy.port());
  // Chunk extensions are the client's; the upstream gets plain chunks, and the trailer
  // section (RFC 9110 section 6.5) travels on.
  ASSERT_TRUE(s.send(kPost + "Transfer-Encoding:  Chunked \r\n\r\n5;ext=\"x\"\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"));
  auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "POST /api 5");
  const auto seen = up.bytes_received();
  EXPECT_NE(seen.find("\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"), std::string::npos) << printable(seen);
  EXPECT_EQ(seen.find("ext="), std::string::npos);
}

TEST_F(Framing, RefusesAFragmentAndBadEscapesInTheTarget) {
  EXPECT_TRUE(refused("GET /api#frag HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_TRUE(refused("GET /api/%zz HTTP/1.1\r\nHost: a\r\n\r\n"));
  EXPECT_TRUE(refused("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"));
}

TEST_F(Framing, KeepsHeaderCaseBothWays) {
  up.set_handler([](FakeUpstream::Exchange& ex) {
    ex.socket.send("HTTP/1.1 200 OK\r\nX-MiXeD-Reply: 1\r\nlowercase-reply: 2\r\nContent-Length: 2\r\n\r\nok");
  });
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send("GET /api HTTP/1.1\r\nHost: a\r\nX-MiXeD-Case: 1\r\nlowercase-header: 2\r\nUPPER-HEADER: 3\r\n\r\n"));
  const auto head = s.read_head();
  EXPECT_NE(head.find("\r\nX-MiXeD-Reply: 1\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nlowercase-reply: 2\r\n"), std::string::npos) << head;
  const auto seen = up.bytes_received();
  EXPECT_NE(seen.find("\r\nX-MiXeD-Case: 1\r\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("\r\nlowercase-header: 2\r\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("\r\nUPPER-HEADER: 3\r\n"), std::string::npos) << seen;
}

// The path the routes, the filters and the upstream see.
struct Paths : ::testing::Test {
  FakeUpstream up;
  std::string get(Proxy& proxy, const std::string& target, int* status = nullptr) {
    auto s = Socket::connect(proxy.port());
    if (!s.send("GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n")) return "";
    auto res = s.read_response();
    if (status) *status = res ? res->result_int() : 0;
    return res ? std::string(res->body()) : "";
  }
};

TEST_F(Paths, RemovesDotSegmentsWhateverEscapesThePathHolds) {
  Proxy proxy(config_for(up.port()));
  int status = 0;
  // Normalised before routing: this reaches the /admin route, not the upstream as sent.
  EXPECT_EQ(get(proxy, "/x/../admin/%2F", &status), "admin\n");
  EXPECT_EQ(status, 403);
  EXPECT_EQ(get(proxy, "/x/%2e%2e/admin", &status), "admin\n");
  EXPECT_EQ(get(proxy, "/%61dmin", &status), "admin\n");  // %61 is 'a': decoded, not refused
  EXPECT_EQ(get(proxy, "/api/./v1//users/../%7Eme?x=%2F"), "GET /api/v1/~me?x=%2F 0");
  EXPECT_EQ(up.requests(), 1);
}

TEST_F(Paths, EncodedSlashesAreKeptByDefault) {
  Proxy proxy(config_for(up.port()));
  EXPECT_EQ(get(proxy, "/public/..%2Fadmin"), "GET /public/..%2Fadmin 0");  // data in one segment, as sent
}

TEST_F(Paths, EncodedSlashesCanBeRejected) {
  Proxy proxy(config_for(up.port(), "    path_with_escaped_slashes_action: reject\n"));
  int status = 0;
  get(proxy, "/public/..%2Fadmin", &status);
  EXPECT_EQ(status, 400);
  EXPECT_EQ(get(proxy, "/public/a%20b"), "GET /public/a%20b 0");
}

TEST_F(Paths, EncodedSlashesCanBeUnescaped) {
  Proxy proxy(config_for(up.port(), "    path_with_escaped_slashes_action: unescape\n"));
  int status = 0;
  EXPECT_EQ(get(proxy, "/public/..%2Fadmin", &status), "admin\n");  // /public/../admin, then normalised
  EXPECT_EQ(get(proxy, "/api%2Fx"), "GET /api/x 0");
}

}  // namespace
