#include "outrigger/http/grpc.hpp"

#include <gtest/gtest.h>

namespace outrigger::http {
namespace {

using std::chrono::milliseconds;

TEST(Grpc, RecognisesItsContentTypes) {
  Fields f;
  EXPECT_FALSE(is_grpc(f));
  for (const char* ct : {"application/grpc", "application/grpc+proto", "Application/GRPC+json", "application/grpc;x=1"}) {
    f.set(boost::beast::http::field::content_type, ct);
    EXPECT_TRUE(is_grpc(f)) << ct;
  }
  for (const char* ct : {"application/grpc-web", "application/json", "application/grp"}) {
    f.set(boost::beast::http::field::content_type, ct);
    EXPECT_FALSE(is_grpc(f)) << ct;
  }
}

TEST(Grpc, ParsesGrpcTimeoutInEveryUnitRoundingUp) {
  EXPECT_EQ(parse_grpc_timeout("1H"), milliseconds(3'600'000));
  EXPECT_EQ(parse_grpc_timeout("2M"), milliseconds(120'000));
  EXPECT_EQ(parse_grpc_timeout("3S"), milliseconds(3000));
  EXPECT_EQ(parse_grpc_timeout("250m"), milliseconds(250));
  EXPECT_EQ(parse_grpc_timeout("1500u"), milliseconds(2));
  EXPECT_EQ(parse_grpc_timeout("1n"), milliseconds(1));
  EXPECT_EQ(parse_grpc_timeout("99999999m"), milliseconds(99'999'999));
}

TEST(Grpc, IgnoresAMalformedGrpcTimeout) {
  for (const char* v : {"", "m", "10", "10x", "-1S", "123456789m", "1.5S", " 1S"})
    EXPECT_FALSE(parse_grpc_timeout(v)) << v;
}

TEST(Grpc, FormatsWhatIsLeftWithinEightDigits) {
  EXPECT_EQ(format_grpc_timeout(milliseconds(250)), "250m");
  EXPECT_EQ(format_grpc_timeout(milliseconds(0)), "1m");  // never 0: that means "already expired" to some servers
  EXPECT_EQ(format_grpc_timeout(milliseconds(-5)), "1m");
  EXPECT_EQ(format_grpc_timeout(milliseconds(100'000'000)), "100000S");
  EXPECT_EQ(parse_grpc_timeout(format_grpc_timeout(milliseconds(12345))), milliseconds(12345));
}

TEST(Grpc, ReadsTheStatus) {
  Fields f;
  EXPECT_EQ(grpc_status_of(f), -1);
  f.set("grpc-status", "14");
  EXPECT_EQ(grpc_status_of(f), 14);
  for (const char* v : {"17", "-1", "x", "1x", ""}) {
    f.set("grpc-status", v);
    EXPECT_EQ(grpc_status_of(f), -1) << v;
  }
}

TEST(Grpc, MapsTheProxysOwnAnswersAsTheSpecSays) {
  EXPECT_EQ(grpc_status_for_http(400), GrpcStatus::internal);
  EXPECT_EQ(grpc_status_for_http(401), GrpcStatus::unauthenticated);
  EXPECT_EQ(grpc_status_for_http(403), GrpcStatus::permission_denied);
  EXPECT_EQ(grpc_status_for_http(404), GrpcStatus::unimplemented);
  EXPECT_EQ(grpc_status_for_http(429), GrpcStatus::unavailable);
  EXPECT_EQ(grpc_status_for_http(502), GrpcStatus::unavailable);
  EXPECT_EQ(grpc_status_for_http(503), GrpcStatus::unavailable);
  EXPECT_EQ(grpc_status_for_http(504), GrpcStatus::deadline_exceeded);
  EXPECT_EQ(grpc_status_for_http(500), GrpcStatus::unknown);
}

TEST(Grpc, PercentEncodesTheMessage) {
  EXPECT_EQ(grpc_message_encode("upstream connect error\n"), "upstream connect error");
  EXPECT_EQ(grpc_message_encode("100% caf\xc3\xa9"), "100%25 caf%C3%A9");
}

}  // namespace
}  // namespace outrigger::http
