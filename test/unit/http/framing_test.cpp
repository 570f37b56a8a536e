// The framing checks (http/framing.hpp): what Beast accepts but a proxy
// must refuse, on requests Beast itself parsed.
#include "outrigger/http/framing.hpp"

#include <gtest/gtest.h>

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

namespace outrigger::http {
namespace {

namespace bhttp = boost::beast::http;

// Beast's header, or nullopt when Beast refuses it already.
std::optional<RequestHeader> parsed(const std::string& head) {
  bhttp::request_parser<bhttp::empty_body, core::SmallAllocator<char>> p;
  boost::system::error_code ec;
  p.put(boost::asio::buffer(head), ec);
  if (!p.is_header_done()) return std::nullopt;
  RequestHeader h = p.get().base();
  return h;
}

Framing check(const std::string& fields, const std::string& version = "1.1") {
  auto h = parsed("POST / HTTP/" + version + "\r\n" + fields + "\r\n");
  if (!h) return Framing::bad_request;  // Beast refused it: a 400 all the same
  return check_request_framing(*h);
}

TEST(Framing, TakesPlainLengthsAndChunked) {
  EXPECT_EQ(check("Host: a\r\nContent-Length: 5\r\n"), Framing::ok);
  EXPECT_EQ(check("Host: a\r\nTransfer-Encoding: chunked\r\n"), Framing::ok);
  EXPECT_EQ(check("Host: a\r\nTransfer-Encoding: Chunked\r\n"), Framing::ok);
  EXPECT_EQ(check("Host: a\r\nTransfer-Encoding:  chunked\t\r\n"), Framing::ok);
  EXPECT_EQ(check("Host: a\r\n"), Framing::ok);
  EXPECT_EQ(check("Host: a:8080\r\n"), Framing::ok);
  EXPECT_EQ(check("Host: [::1]:80\r\n"), Framing::ok);
  EXPECT_EQ(check("", "1.0"), Framing::ok);  // HTTP/1.0 needs no Host
}

TEST(Framing, RefusesTransferCodingsOtherThanAFinalChunked) {
  EXPECT_EQ(check("Host: a\r\nTransfer-Encoding: chunked, identity\r\n"), Framing::bad_request);
  EXPECT_EQ(check("Host: a\r\nTransfer-Encoding: identity\r\n"), Framing::bad_request);
  EXPECT_EQ(check("Host: a\r\nTransfer-Encoding: gzip\r\n"), Framing::bad_request);
  EXPECT_EQ(check("Host: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), Framing::bad_request);
  EXPECT_EQ(check("Host: a\r\nTransfer-Encoding: chunked,\r\n"), Framing::bad_request);
  EXPECT_EQ(check("Host: a\r\nTransfer-Encoding: \xff" "chunked\r\n"), Framing::bad_request);
  EXPECT_EQ(check("Host: a\r\nTransfer-Encoding: chunked\xff\r\n"), Framing::bad_request);
  EXPECT_EQ(check("Host: a\r\nTransfer-Encoding: \"chunked\"\r\n"), Framing::bad_request);
  EXPECT_EQ(check("Host: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n"), Framing::bad_request);
  EXPECT_EQ(check("Host: a\r\nTransfer-Encoding: chunked\r\n", "1.0"), Framing::bad_request);
  // A coding the proxy would have to undo before it re-chunks: not implemented.
  EXPECT_EQ(check("Host: a\r\nTransfer-Encoding: gzip, chunked\r\n"), Framing::not_implemented);
  EXPECT_EQ(check("Host: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"), Framing::not_implemented);
}

TEST(Framing, RefusesContentLengthsThatAreNotOneNumber) {
  EXPECT_EQ(check("Host: a\r\nContent-Length: 5, 5\r\n"), Framing::bad_request);
  EXPECT_EQ(check("Host: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n"), Framing::bad_request);
  EXPECT_EQ(check("Host: a\r\nContent-Length: +5\r\n"), Framing::bad_request);
}

TEST(Framing, RefusesMoreThanOneHostOrABadOne) {
  EXPECT_EQ(check("Host: a\r\nHost: b\r\n"), Framing::bad_request);
  EXPECT_EQ(check("Host: a\r\nHost: a\r\n"), Framing::bad_request);
  EXPECT_EQ(check("Host: user@a\r\n"), Framing::bad_request);
  EXPECT_EQ(check("Host: a b\r\n"), Framing::bad_request);
  EXPECT_EQ(check(""), Framing::bad_request);  // HTTP/1.1 without Host
}

TEST(Framing, TurnsAbsoluteFormIntoOriginFormWhenTheHostAgrees) {
  auto h = parsed("GET http://api.example/a/b?x=1 HTTP/1.1\r\nHost: api.example\r\n\r\n");
  ASSERT_TRUE(h);
  EXPECT_TRUE(to_origin_form(*h));
  EXPECT_EQ(h->target(), "/a/b?x=1");
  EXPECT_EQ((*h)[bhttp::field::host], "api.example");

  auto bare = parsed("GET http://api.example HTTP/1.1\r\nHost: api.example\r\n\r\n");
  ASSERT_TRUE(bare);
  EXPECT_TRUE(to_origin_form(*bare));
  EXPECT_EQ(bare->target(), "/");

  auto other = parsed("GET http://evil.example/a HTTP/1.1\r\nHost: api.example\r\n\r\n");
  ASSERT_TRUE(other);
  EXPECT_FALSE(to_origin_form(*other));
  auto odd = parsed("GET ftp://api.example/a HTTP/1.1\r\nHost: api.example\r\n\r\n");
  ASSERT_TRUE(odd);
  EXPECT_FALSE(to_origin_form(*odd));
}

TEST(Framing, FindsBrokenChunksInTheBytesAtHand) {
  EXPECT_TRUE(chunked_prefix_ok("5\r\nhello\r\n0\r\n\r\n"));
  EXPECT_TRUE(chunked_prefix_ok("5\r\nhel"));  // incomplete is fine: the rest comes later
  EXPECT_TRUE(chunked_prefix_ok("5;ext=1\r\nhello\r\n"));
  EXPECT_TRUE(chunked_prefix_ok("0\r\n\r\nGET / HTTP/1.1\r\n"));  // the next request is not this body's
  EXPECT_FALSE(chunked_prefix_ok("5\r\nhelloEXTRA\r\n0\r\n\r\n"));
  EXPECT_FALSE(chunked_prefix_ok("+5\r\nhello\r\n"));
  EXPECT_FALSE(chunked_prefix_ok("0x5\r\nhello\r\n0\r\n\r\n"));
  EXPECT_FALSE(chunked_prefix_ok("5_0\r\nhello\r\n"));
  EXPECT_FALSE(chunked_prefix_ok("5\rhello\r\n"));
  EXPECT_FALSE(chunked_prefix_ok("fffffffffffffffff1\r\nhello\r\n"));
  EXPECT_FALSE(chunked_prefix_ok("zz\r\n"));
}

}  // namespace
}  // namespace outrigger::http
