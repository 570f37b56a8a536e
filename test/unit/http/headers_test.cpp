#include "outrigger/http/headers.hpp"

#include <gtest/gtest.h>

#include <set>

namespace outrigger::http {
namespace {

namespace bhttp = boost::beast::http;

TEST(Headers, StripsHopByHopAndConnectionListedHeaders) {
  bhttp::fields f;
  f.set(bhttp::field::connection, "keep-alive, X-Private");
  f.set("x-private", "secret");
  f.set(bhttp::field::keep_alive, "timeout=5");
  f.set(bhttp::field::te, "trailers");
  f.set(bhttp::field::upgrade, "websocket");
  f.set(bhttp::field::proxy_connection, "keep-alive");
  f.set(bhttp::field::trailer, "x-checksum");
  f.set(bhttp::field::transfer_encoding, "chunked");
  f.set("x-kept", "yes");
  strip_hop_by_hop(f);
  EXPECT_EQ(std::distance(f.begin(), f.end()), 1);
  EXPECT_EQ(f["x-kept"], "yes");
}

TEST(Headers, AppendsToForwardedForAndKeepsRequestId) {
  RequestIdGenerator ids(1);
  bhttp::fields f;
  f.set("x-forwarded-for", "10.0.0.1");
  f.set("x-request-id", "abc");
  add_forwarding_headers(f, "127.0.0.1", "http", ids);
  EXPECT_EQ(f["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
  EXPECT_EQ(f["x-forwarded-proto"], "http");
  EXPECT_EQ(f["x-request-id"], "abc");
}

TEST(Headers, GeneratesRequestIdWhenAbsent) {
  RequestIdGenerator ids(1);
  bhttp::fields f;
  add_forwarding_headers(f, "::1", "http", ids);
  EXPECT_EQ(f["x-forwarded-for"], "::1");
  EXPECT_EQ(f["x-request-id"].size(), 36u);
}

TEST(RequestIdGenerator, MakesDistinctVersion4Uuids) {
  RequestIdGenerator ids(42);
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    char buf[36];
    ids.next(buf);
    std::string id(buf, sizeof buf);
    ASSERT_EQ(id[8], '-');
    ASSERT_EQ(id[14], '4');
    ASSERT_TRUE(id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b') << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(Headers, HasTokenIsCaseInsensitive) {
  EXPECT_TRUE(has_token("keep-alive, Upgrade", "upgrade"));
  EXPECT_FALSE(has_token("keep-alive", "close"));
}

}  // namespace
}  // namespace outrigger::http
