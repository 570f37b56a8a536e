// x-outrigger-* control headers as a client and the upstream see them: they
// steer retries and the timeout only on a listener that trusts its clients,
// and never reach the upstream.
#include <gtest/gtest.h>

#include "support/net.hpp"

namespace {

using namespace testing_support;
using Clock = std::chrono::steady_clock;

std::string config(std::uint16_t port, bool trusted) {
  return fill(R"(
admin: { enabled: false }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    trust_request_headers: {TRUST}
    routes: [{ cluster: app, timeout: 3s }]
clusters:
  - { name: app, endpoints: [127.0.0.1:{P}] }
)",
              {{"P", std::to_string(port)}, {"TRUST", trusted ? "true" : "false"}});
}

// 503 on the first request, then echo; remembers whether any control header arrived.
struct FlakyOnce {
  std::atomic<int> n{0};
  std::atomic<bool> saw_control{false};
  FakeUpstream server{[this](FakeUpstream::Exchange& ex) {
    for (const auto& f : ex.request)
      if (f.name_string().starts_with("x-outrigger-retry-on") || f.name_string() == "x-outrigger-secret")
        saw_control = true;
    if (n++ == 0) return FakeUpstream::reply(ex, 503, "busy");
    FakeUpstream::echo(ex);
  }};
};

const std::vector<std::pair<std::string, std::string>> kRetryHeaders = {
    {"x-outrigger-retry-on", "gateway-error"}, {"x-outrigger-max-retries", "2"}, {"x-outrigger-secret", "1"}};

TEST(ControlHeaders, ATrustedClientTurnsOnRetries) {
  FlakyOnce up;
  Proxy proxy(config(up.server.port(), true));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("GET", "/x", kRetryHeaders)));
  auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200);
  EXPECT_EQ(up.server.requests(), 2);
  EXPECT_EQ(up.server.last_request()["x-outrigger-attempt-count"], "2");
  EXPECT_EQ(up.server.last_request()["x-outrigger-secret"], "1");  // other x-outrigger-* pass when trusted
}

TEST(ControlHeaders, AnUntrustedClientCannotAndItsHeadersAreDropped) {
  FlakyOnce up;
  Proxy proxy(config(up.server.port(), false));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("GET", "/x", kRetryHeaders)));
  auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 503);
  EXPECT_EQ(up.server.requests(), 1);
  EXPECT_FALSE(up.saw_control);
}

TEST(ControlHeaders, ATrustedClientSetsTheTimeout) {
  std::atomic<bool> stop{false};
  FakeUpstream slow([&](FakeUpstream::Exchange& ex) {
    for (int i = 0; i < 30 && !stop; ++i) std::this_thread::sleep_for(10ms);
    FakeUpstream::reply(ex, 200, "late");
  });
  for (bool trusted : {true, false}) {
    Proxy proxy(config(slow.port(), trusted));
    auto s = Socket::connect(proxy.port());
    const auto start = Clock::now();
    ASSERT_TRUE(s.send(request_text("GET", "/x", {{"x-outrigger-upstream-rq-timeout-ms", "100"}})));
    auto res = s.read_response();
    const auto took = Clock::now() - start;
    ASSERT_TRUE(res);
    if (trusted) {
      EXPECT_EQ(res->result_int(), 504);
      EXPECT_LT(took, 280ms);
    } else {
      EXPECT_EQ(res->result_int(), 200);  // the route's 3 s applies
      EXPECT_GE(took, 280ms);
    }
  }
  stop = true;
}

}  // namespace
