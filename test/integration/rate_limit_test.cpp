// The local_rate_limit filter as clients see it: 429 with retry-after once a
// bucket is empty, then recovery; buckets per key; decisions counted.
#include <gtest/gtest.h>

#include "support/net.hpp"

namespace {

using namespace testing_support;

std::string config(std::uint16_t app, const std::string& filter) {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    filters: [{FILTER}]
    routes: [{ cluster: app }]
clusters:
  - { name: app, endpoints: [127.0.0.1:{APP}] }
)",
              {{"APP", std::to_string(app)}, {"FILTER", filter}});
}

int get(Socket& s, std::vector<std::pair<std::string, std::string>> headers = {}, Response* out = nullptr) {
  if (!s.send(request_text("GET", "/x", std::move(headers)))) return -1;
  auto res = s.read_response();
  if (!res) return -1;
  if (out) *out = *res;
  return res->result_int();
}

TEST(RateLimit, AnswersTooManyRequestsThenRecovers) {
  FakeUpstream app;
  // Two tokens a second: the four requests below fit easily in the half second
  // before a token comes back, even on a slow machine.
  Proxy proxy(config(app.port(), "{ type: local_rate_limit, tokens_per_second: 2, burst: 3 }"));
  auto s = Socket::connect(proxy.port());
  EXPECT_EQ(get(s), 200);
  EXPECT_EQ(get(s), 200);
  EXPECT_EQ(get(s), 200);
  Response limited;
  EXPECT_EQ(get(s, {}, &limited), 429);
  EXPECT_EQ(limited["retry-after"], "1");
  EXPECT_EQ(limited["x-outrigger-error"], "rate_limited");
  EXPECT_EQ(app.requests(), 3);  // the refused one never reached the upstream
  // The refill is the feature's own clock: 600 ms bring one token back (2/s), not two.
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ(get(s), 200);
  EXPECT_EQ(get(s), 429);
  std::string text;  // the last response may reach us a moment before it is counted
  EXPECT_TRUE(eventually([&] {
    return has(text = metrics(proxy),
               "outrigger_requests_total{direction=\"inbound\",listener=\"ingress\",route=\"ingress/0\",cluster=\"app\",code=\"429\"} 2");
  }));
  EXPECT_TRUE(has(text, "outrigger_ratelimit_decisions_total{direction=\"inbound\",listener=\"ingress\",decision=\"allowed\"} 4"))
      << text;
  EXPECT_TRUE(has(text, "outrigger_ratelimit_decisions_total{direction=\"inbound\",listener=\"ingress\",decision=\"limited\"} 2"));
  EXPECT_TRUE(has(text, "outrigger_requests_total{direction=\"inbound\",listener=\"ingress\",route=\"ingress/0\",cluster=\"app\",code=\"429\"} 2"))
      << text;
}

TEST(RateLimit, KeepsOneBucketPerKey) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), "{ type: local_rate_limit, tokens_per_second: 0.5, burst: 2, key: x-user }"));
  auto s = Socket::connect(proxy.port());
  EXPECT_EQ(get(s, {{"x-user", "alice"}}), 200);
  EXPECT_EQ(get(s, {{"x-user", "alice"}}), 200);
  Response limited;
  EXPECT_EQ(get(s, {{"x-user", "alice"}}, &limited), 429);
  EXPECT_EQ(limited["retry-after"], "2");  // 0.5 token/s: two seconds to the next
  EXPECT_EQ(get(s, {{"x-user", "bob"}}), 200);  // bob has his own bucket
  EXPECT_EQ(get(s), 200);                       // so do requests without the header
}

TEST(RateLimit, SourceIpKeysAreCappedWithoutLosingTheLimit) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), "{ type: local_rate_limit, tokens_per_second: 1, burst: 1, key: source_ip, max_keys: 1 }"));
  auto s = Socket::connect(proxy.port());
  EXPECT_EQ(get(s), 200);
  EXPECT_EQ(get(s), 429);
}

TEST(DirectResponse, SendsItsConfiguredHeaders) {
  Proxy proxy(R"(
admin: { enabled: false }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes:
      - direct_response: { status: 200, body: "{}", headers: { content-type: application/json, cache-control: no-store } }
)");
  auto res = http_get(proxy.port(), "/");
  ASSERT_TRUE(res);
  EXPECT_EQ((*res)["content-type"], "application/json");
  EXPECT_EQ((*res)["cache-control"], "no-store");  // was dropped before: only content-type was used
  EXPECT_EQ(res->body(), "{}");
}

}  // namespace
