#include "outrigger/router/retry_state.hpp"

#include <gtest/gtest.h>

#include "../http/test_exchange.hpp"

namespace outrigger::router {
namespace {

namespace bhttp = boost::beast::http;
using http::testing::TestExchange;
using Clock = std::chrono::steady_clock;

config::Route route_with(unsigned retry_on, std::size_t buffer_limit = 16) {
  config::Route r;
  r.retry = config::RetryPolicy{};
  r.retry->retry_on = retry_on;
  r.retry->num_retries = 2;
  r.retry_buffer_limit = buffer_limit;
  return r;
}

TEST(RetryState, TeesAStreamedBodyAndResendsItWhileItFits) {
  TestExchange t(bhttp::verb::put, "/x");
  auto& ex = t.get();
  ex.request_has_body = true;  // chunked: no Content-Length
  const auto route = route_with(config::retry_5xx);
  RetryState retry(ex, route, Clock::time_point::max());
  EXPECT_TRUE(retry.active());           // unknown length: decided at the retry
  EXPECT_FALSE(retry.buffers(ex));       // streamed, not read ahead
  EXPECT_TRUE(retry.can_resend(ex));     // nothing read yet
  retry.tee("hello ", 6, false);
  ex.bytes_received = 6;
  EXPECT_TRUE(retry.can_resend(ex));
  EXPECT_FALSE(retry.body_complete());
  retry.tee("world", 5, true);
  ex.bytes_received = 11;
  EXPECT_TRUE(retry.can_resend(ex));
  EXPECT_TRUE(retry.body_complete());
  EXPECT_EQ(retry.body(), "hello world");
}

TEST(RetryState, ABodyThatOutgrowsTheBufferCannotGoAgain) {
  TestExchange t(bhttp::verb::put, "/x");
  auto& ex = t.get();
  ex.request_has_body = true;
  const auto route = route_with(config::retry_5xx, 8);
  RetryState retry(ex, route, Clock::time_point::max());
  retry.tee("0123456789", 10, true);
  ex.bytes_received = 10;
  EXPECT_FALSE(retry.can_resend(ex));
  EXPECT_TRUE(retry.body().empty());  // the copy is given up, not kept half
}

TEST(RetryState, ABodyWithAContentLengthIsReadAheadOnlyWhenItFits) {
  TestExchange t(bhttp::verb::put, "/x");
  auto& ex = t.get();
  ex.request_has_body = true;
  ex.request_content_length = 10;
  const auto route = route_with(config::retry_5xx, 16);
  EXPECT_TRUE(RetryState(ex, route, Clock::time_point::max()).buffers(ex));
  ex.request_content_length = 17;
  RetryState too_big(ex, route, Clock::time_point::max());
  EXPECT_FALSE(too_big.active());
}

TEST(RetryState, GrpcCallsAreRetriedOnTheirStatusesWhateverTheMethod) {
  TestExchange t(bhttp::verb::post, "/pkg.Svc/M");
  auto& ex = t.get();
  const auto route = route_with(config::retry_grpc_unavailable | config::retry_grpc_cancelled);
  EXPECT_FALSE(RetryState(ex, route, Clock::time_point::max()).active());  // a POST that is not gRPC
  ex.grpc = true;
  RetryState retry(ex, route, Clock::time_point::max());
  ASSERT_TRUE(retry.active());
  EXPECT_TRUE(retry.holds_grpc_responses());
  EXPECT_TRUE(retry.retriable_grpc(14));
  EXPECT_TRUE(retry.retriable_grpc(1));
  EXPECT_FALSE(retry.retriable_grpc(13));
  EXPECT_FALSE(retry.retriable_grpc(0));
  EXPECT_FALSE(retry.retriable_grpc(-1));
  EXPECT_EQ(retry.grpc_hold_limit(), 64u * 1024);
}

TEST(RetryState, HoldsNoGrpcResponseWithoutAGrpcStatusToRetry) {
  TestExchange t(bhttp::verb::post, "/pkg.Svc/M");
  auto& ex = t.get();
  ex.grpc = true;
  const auto route = route_with(config::retry_5xx);
  RetryState retry(ex, route, Clock::time_point::max());
  ASSERT_TRUE(retry.active());
  EXPECT_FALSE(retry.holds_grpc_responses());
}

}  // namespace
}  // namespace outrigger::router
