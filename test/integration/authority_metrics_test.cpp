// Requests per authority, capped: the first `max_authorities` Hosts get a
// series each, the rest count as "other", whatever clients send.
#include <gtest/gtest.h>

#include "support/net.hpp"

namespace {

using namespace testing_support;

TEST(AuthorityMetrics, CountsEachHostUpToTheCapThenOther) {
  FakeUpstream app;
  Proxy proxy(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - { name: ingress, address: 127.0.0.1:0, max_authorities: 2, routes: [{ cluster: app }] }
clusters:
  - { name: app, endpoints: [127.0.0.1:{P}] }
)",
                   {{"P", std::to_string(app.port())}}));
  auto s = Socket::connect(proxy.port());
  // More distinct hosts than the worker's cache holds, so that misses and hits both happen.
  const std::vector<std::string> hosts{"Reviews.default", "ratings", "reviews.default", "a", "b", "c",
                                       "d",               "e",       "f",               "g", "h", "i"};
  for (const auto& h : hosts) {
    ASSERT_TRUE(s.send("GET / HTTP/1.1\r\nHost: " + h + "\r\n\r\n"));
    ASSERT_TRUE(s.read_response());
  }
  ASSERT_TRUE(s.send("GET / HTTP/1.1\r\nHost: ratings\r\n\r\n"));
  ASSERT_TRUE(s.read_response());
  const std::string prefix = "outrigger_authority_requests_total{direction=\"inbound\",listener=\"ingress\",authority=";
  std::string text;  // the last response may reach us a moment before it is counted
  EXPECT_TRUE(eventually([&] { return has(text = metrics(proxy), prefix + "\"ratings\"} 2"); }));
  EXPECT_TRUE(has(text, prefix + "\"reviews.default\"} 2")) << text;  // case folded
  EXPECT_TRUE(has(text, prefix + "\"ratings\"} 2")) << text;
  EXPECT_TRUE(has(text, prefix + "\"other\"} 9")) << text;
  EXPECT_FALSE(has(text, prefix + "\"a\"}"));
}

TEST(AuthorityMetrics, AreOffUnlessAsked) {
  FakeUpstream app;
  Proxy proxy(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - { name: ingress, address: 127.0.0.1:0, routes: [{ cluster: app }] }
clusters:
  - { name: app, endpoints: [127.0.0.1:{P}] }
)",
                   {{"P", std::to_string(app.port())}}));
  ASSERT_TRUE(http_get(proxy.port(), "/"));
  EXPECT_FALSE(has(metrics(proxy), "outrigger_authority_requests_total{"));
}

}  // namespace
