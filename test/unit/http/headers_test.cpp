#include "outrigger/http/headers.hpp"

#include <gtest/gtest.h>

#include <iterator>
#include <set>

#include "outrigger/config/config.hpp"

namespace outrigger::http {
namespace {

namespace bhttp = boost::beast::http;

TEST(Headers, StripsHopByHopAndConnectionListedHeaders) {
  Fields f;
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
  Fields f;
  f.set("x-forwarded-for", "10.0.0.1");
  f.set("x-request-id", "abc");
  add_forwarding_headers(f, "127.0.0.1", "http", false, ids);
  EXPECT_EQ(f["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
  EXPECT_EQ(f["x-forwarded-proto"], "http");
  EXPECT_EQ(f["x-request-id"], "abc");
}

TEST(Headers, ForwardedProtoSaysWhatTheClientConnectionWasUnlessTrusted) {
  RequestIdGenerator ids(1);
  Fields untrusted, trusted, absent;
  untrusted.set("x-forwarded-proto", "https");
  trusted.set("x-forwarded-proto", "https");
  add_forwarding_headers(untrusted, "10.0.0.1", "http", false, ids);
  add_forwarding_headers(trusted, "10.0.0.1", "http", true, ids);
  add_forwarding_headers(absent, "10.0.0.1", "https", false, ids);
  EXPECT_EQ(untrusted["x-forwarded-proto"], "http");  // a client's claim is replaced
  EXPECT_EQ(trusted["x-forwarded-proto"], "https");   // a trusted proxy in front said so
  EXPECT_EQ(absent["x-forwarded-proto"], "https");
  EXPECT_EQ(untrusted.count("x-forwarded-proto"), 1u);  // one field, not two
}

TEST(Headers, GeneratesRequestIdWhenAbsent) {
  RequestIdGenerator ids(1);
  Fields f;
  add_forwarding_headers(f, "::1", "http", false, ids);
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

namespace outrigger::http {
namespace {

Fields control_request() {
  Fields f;
  f.insert("Host", "a");
  f.insert("X-Outrigger-Retry-On", "5xx, reset,nonsense");
  f.insert("x-outrigger-max-retries", "3");
  f.insert("x-outrigger-upstream-rq-timeout-ms", "250");
  f.insert("x-outrigger-attempt-count", "7");
  return f;
}

TEST(ControlHeaders, ATrustedClientSteersTheRequest) {
  auto f = control_request();
  const auto c = take_control_headers(f, true);
  EXPECT_EQ(c.retry_on, config::retry_5xx | config::retry_reset);
  EXPECT_EQ(c.max_retries, 3u);
  EXPECT_EQ(c.timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(f.find("x-outrigger-retry-on"), f.end());  // consumed
  EXPECT_EQ(f.find("x-outrigger-max-retries"), f.end());
  EXPECT_EQ(f.find("x-outrigger-upstream-rq-timeout-ms"), f.end());
  EXPECT_NE(f.find("x-outrigger-attempt-count"), f.end());  // other x-outrigger-* pass from trusted clients
  EXPECT_NE(f.find("host"), f.end());
}

TEST(ControlHeaders, AnUntrustedClientIsIgnoredAndStripped) {
  auto f = control_request();
  const auto c = take_control_headers(f, false);
  EXPECT_FALSE(c.any());
  EXPECT_EQ(std::distance(f.begin(), f.end()), 1);  // only Host is left
}

TEST(ControlHeaders, IgnoresInvalidValues) {
  Fields f;
  f.insert("x-outrigger-max-retries", "many");
  f.insert("x-outrigger-upstream-rq-timeout-ms", "-5");
  const auto c = take_control_headers(f, true);
  EXPECT_FALSE(c.any());
  EXPECT_EQ(f.begin(), f.end());
}

TEST(ControlHeaders, FaultHeadersAreTakenFromTrustedClientsAndNeverPassOn) {
  auto fault_request = [] {
    Fields f;
    f.insert("x-outrigger-fault-delay-request", "200");
    f.insert("x-outrigger-fault-delay-request-percentage", "12.5");
    f.insert("x-outrigger-fault-abort-request", "503");
    f.insert("x-outrigger-fault-abort-grpc-request", "14");
    f.insert("x-outrigger-fault-abort-request-percentage", "50");
    return f;
  };
  auto trusted = fault_request();
  const auto c = take_control_headers(trusted, true);
  EXPECT_EQ(c.fault_delay, std::chrono::milliseconds(200));
  EXPECT_EQ(c.fault_delay_percent, 12.5);
  EXPECT_EQ(c.fault_abort_status, 503);
  EXPECT_EQ(c.fault_abort_grpc_status, 14);
  EXPECT_EQ(c.fault_abort_percent, 50);
  EXPECT_EQ(trusted.begin(), trusted.end());  // consumed, even from a trusted client
  auto untrusted = fault_request();
  const auto u = take_control_headers(untrusted, false);
  EXPECT_FALSE(u.fault_delay || u.fault_abort_status || u.fault_abort_grpc_status);
  EXPECT_EQ(untrusted.begin(), untrusted.end());
  Fields bad;
  bad.insert("x-outrigger-fault-abort-request", "700");
  bad.insert("x-outrigger-fault-abort-grpc-request", "17");
  bad.insert("x-outrigger-fault-abort-request-percentage", "101");
  bad.insert("x-outrigger-fault-delay-request", "soon");
  const auto b = take_control_headers(bad, true);
  EXPECT_FALSE(b.fault_abort_status || b.fault_abort_grpc_status || b.fault_abort_percent || b.fault_delay);
}

}  // namespace
}  // namespace outrigger::http
