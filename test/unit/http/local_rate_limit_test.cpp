#include <gtest/gtest.h>

#include "test_exchange.hpp"

namespace outrigger::http {
namespace {

using boost::beast::http::verb;
using testing::FilterHarness;
using testing::TestExchange;

std::string errors_of(const std::string& yaml) {
  FilterHarness h(yaml);
  EXPECT_EQ(h.factory == nullptr, !h.errors.empty());
  return h.error_text();
}

TEST(LocalRateLimitConfig, AcceptsEveryKeyKind) {
  for (const char* key : {"none", "source_ip", "peer_identity", "x-user"})
    EXPECT_EQ(errors_of(std::string("{ type: local_rate_limit, tokens_per_second: 5, key: ") + key + " }"), "") << key;
}

TEST(LocalRateLimitConfig, ReportsWhatIsWrong) {
  EXPECT_NE(errors_of("{ type: local_rate_limit }").find("missing required key 'tokens_per_second'"),
            std::string::npos);
  EXPECT_NE(errors_of("{ type: local_rate_limit, tokens_per_second: -1 }").find("tokens_per_second: must be a number from"),
            std::string::npos);
  EXPECT_NE(errors_of("{ type: local_rate_limit, tokens_per_second: x }").find("expected a number, got 'x'"),
            std::string::npos);
  EXPECT_NE(errors_of("{ type: local_rate_limit, tokens_per_second: 1, brust: 2 }").find("did you mean 'burst'"),
            std::string::npos);
  EXPECT_NE(errors_of("{ type: local_rate_limit, tokens_per_second: 1, key: 'a b' }").find("filters[0].key"),
            std::string::npos);
}

TEST(LocalRateLimit, AnswersTooManyRequestsWithRetryAfterOwnedByTheReply) {
  FilterHarness h("{ type: local_rate_limit, tokens_per_second: 0.5, burst: 2 }");
  ASSERT_TRUE(h.filter) << h.error_text();
  TestExchange a(verb::get, "/"), b(verb::get, "/"), c(verb::get, "/"), d(verb::get, "/");
  EXPECT_EQ(h.status(a.get()), 0);
  EXPECT_EQ(h.status(b.get()), 0);
  auto first = h.on_request(c.get());
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 429);
  EXPECT_EQ(first->extra.name, "retry-after");
  EXPECT_EQ(first->extra.value, "2");
  // A second refusal on this worker does not change the first reply (it may
  // still be waiting to be written).
  auto second = h.on_request(d.get());
  ASSERT_TRUE(second);
  EXPECT_EQ(first->extra.value, "2");
  EXPECT_EQ(h.count("outrigger_ratelimit_decisions_total", {"inbound", "ingress", "allowed"}), 2u);
  EXPECT_EQ(h.count("outrigger_ratelimit_decisions_total", {"inbound", "ingress", "limited"}), 2u);
}

TEST(LocalRateLimit, KeysBucketsByHeader) {
  FilterHarness h("{ type: local_rate_limit, tokens_per_second: 1, burst: 1, key: x-user }");
  TestExchange alice1(verb::get, "/"), alice2(verb::get, "/"), bob(verb::get, "/");
  alice1.request.set("x-user", "alice");
  alice2.request.set("x-user", "alice");
  bob.request.set("x-user", "bob");
  EXPECT_EQ(h.status(alice1.get()), 0);
  EXPECT_EQ(h.status(alice2.get()), 429);
  EXPECT_EQ(h.status(bob.get()), 0);
}

}  // namespace
}  // namespace outrigger::http
