// The classic breaker as a client and the upstreams see it: it opens on the
// failure rate, answers at once (503, a fallback cluster, or a static reply)
// without touching the failing upstream, then probes and closes or reopens.
#include <gtest/gtest.h>

#include "support/net.hpp"

namespace {

using namespace testing_support;

// An upstream that answers whatever `status` holds now.
struct SwitchableUpstream {
  std::atomic<int> status{200};
  FakeUpstream server{[this](FakeUpstream::Exchange& ex) {
    const int s = status.load();
    FakeUpstream::reply(ex, s, "primary " + std::to_string(s));
  }};
};

// `open_duration`: short where a test waits for the half-open state; long
// where it only looks at the open state, so that a slow machine cannot let the
// breaker half-open in the middle of the test.
std::string config(std::uint16_t primary, std::uint16_t spare, const std::string& fallback,
                   const std::string& open_duration = "30s") {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 2
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes:
      - name: r
        cluster: primary
{FALLBACK}
clusters:
  - name: primary
    endpoints: [127.0.0.1:{P}]
    breaker: { failure_rate: 0.5, minimum_requests: 10, window: 10s, open_duration: {OPEN}, half_open_requests: 3 }
  - { name: spare, endpoints: [127.0.0.1:{S}] }
)",
              {{"P", std::to_string(primary)}, {"S", std::to_string(spare)}, {"FALLBACK", fallback}, {"OPEN", open_duration}});
}


// The breaker records a call once its response is out, so the client may see
// the answer a moment before the state changes: wait for the metric.
bool state_is(Proxy& proxy, int state) {
  return eventually(
      [&] { return has(metrics(proxy), "outrigger_breaker_state{cluster=\"primary\"} " + std::to_string(state)); });
}

void trip(SwitchableUpstream& primary, Proxy& proxy) {
  primary.status = 500;
  const auto statuses = send_gets(proxy.port(), 10);
  ASSERT_EQ(statuses, std::vector<int>(10, 500));  // the tenth failure opens it
  ASSERT_EQ(primary.server.requests(), 10);
  ASSERT_TRUE(state_is(proxy, 1));
}

TEST(Breaker, OpensOnTheFailureRateAndAnswersWithoutTheUpstream) {
  SwitchableUpstream primary;
  FakeUpstream spare;
  Proxy proxy(config(primary.server.port(), spare.port(), "", "30s"));
  EXPECT_EQ(send_gets(proxy.port(), 5), std::vector<int>(5, 200));
  primary.status = 500;
  EXPECT_EQ(send_gets(proxy.port(), 5), std::vector<int>(5, 500));  // 5 of 10: the rate is reached
  EXPECT_EQ(primary.server.requests(), 10);
  ASSERT_TRUE(state_is(proxy, 1));

  auto s = Socket::connect(proxy.port());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(s.send(request_text("GET", "/x")));
    auto res = s.read_response();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 503);
    EXPECT_EQ((*res)["x-outrigger-error"], "circuit_open");
  }
  EXPECT_EQ(primary.server.requests(), 10);  // nothing reached it while open
  const auto text = metrics(proxy);
  EXPECT_TRUE(has(text, "outrigger_breaker_state{cluster=\"primary\"} 1")) << text;
  EXPECT_TRUE(has(text, "outrigger_breaker_state{cluster=\"spare\"} 0"));
  EXPECT_TRUE(has(text, "outrigger_breaker_opened_total{cluster=\"primary\"} 1"));
}

TEST(Breaker, SendsTrafficToTheFallbackClusterWhileOpen) {
  SwitchableUpstream primary;
  FakeUpstream spare([](FakeUpstream::Exchange& ex) { FakeUpstream::reply(ex, 200, "spare"); });
  Proxy proxy(config(primary.server.port(), spare.port(), "        fallback: { cluster: spare }", "30s"));
  trip(primary, proxy);
  std::vector<std::string> bodies;
  EXPECT_EQ(send_gets(proxy.port(), 10, &bodies), std::vector<int>(10, 200));
  EXPECT_EQ(bodies, std::vector<std::string>(10, "spare"));
  EXPECT_EQ(spare.requests(), 10);
  EXPECT_EQ(primary.server.requests(), 10);
  const auto text = metrics(proxy);
  EXPECT_TRUE(eventually([&] {
    return has(metrics(proxy), "outrigger_requests_total{direction=\"inbound\",listener=\"ingress\",route=\"r\","
                               "cluster=\"spare\",code=\"200\"} 10");
  })) << text;
}

TEST(Breaker, AnswersTheStaticFallbackWhileOpen) {
  SwitchableUpstream primary;
  FakeUpstream spare;
  Proxy proxy(config(primary.server.port(), spare.port(),
                     "        fallback: { status: 200, body: '{\"items\":[]}', headers: [{ name: content-type, value: "
                     "application/json }] }",
                     "30s"));
  trip(primary, proxy);
  auto res = http_get(proxy.port(), "/x");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200);
  EXPECT_EQ(res->body(), "{\"items\":[]}");
  EXPECT_EQ((*res)["content-type"], "application/json");
  EXPECT_EQ(primary.server.requests(), 10);
  EXPECT_EQ(spare.requests(), 0);
}

TEST(Breaker, HalfOpensAfterTheOpenDurationAndClosesOnSuccessfulProbes) {
  SwitchableUpstream primary;
  FakeUpstream spare;
  Proxy proxy(config(primary.server.port(), spare.port(), "", "1s"));  // long enough for a slow machine
  trip(primary, proxy);
  primary.status = 200;  // the upstream has recovered
  EXPECT_EQ(send_gets(proxy.port(), 1), std::vector<int>{503});
  std::this_thread::sleep_for(1100ms);  // the open duration passes: the breaker's own clock, no event to wait for
  EXPECT_EQ(send_gets(proxy.port(), 3), std::vector<int>(3, 200));  // the probes
  EXPECT_TRUE(state_is(proxy, 0));
  EXPECT_EQ(send_gets(proxy.port(), 20), std::vector<int>(20, 200));
  EXPECT_EQ(primary.server.requests(), 10 + 3 + 20);
}

TEST(Breaker, AFailedProbeOpensItAgain) {
  SwitchableUpstream primary;
  FakeUpstream spare;
  Proxy proxy(config(primary.server.port(), spare.port(), "", "1s"));  // long enough for a slow machine
  trip(primary, proxy);
  std::this_thread::sleep_for(1100ms);  // the open duration passes: the breaker's own clock
  EXPECT_EQ(send_gets(proxy.port(), 1), std::vector<int>{500});  // a probe, still failing
  EXPECT_EQ(primary.server.requests(), 11);
  ASSERT_TRUE(state_is(proxy, 1));
  EXPECT_EQ(send_gets(proxy.port(), 5), std::vector<int>(5, 503));  // open again
  EXPECT_EQ(primary.server.requests(), 11);
  const auto text = metrics(proxy);
  EXPECT_TRUE(has(text, "outrigger_breaker_state{cluster=\"primary\"} 1")) << text;
  EXPECT_TRUE(has(text, "outrigger_breaker_opened_total{cluster=\"primary\"} 2")) << text;
}

TEST(Breaker, CountsSlowCallsAsFailures) {
  std::atomic<bool> slow{true};
  FakeUpstream up([&](FakeUpstream::Exchange& ex) {
    if (slow) std::this_thread::sleep_for(60ms);
    FakeUpstream::reply(ex, 200, "ok");
  });
  Proxy proxy(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - { name: ingress, address: 127.0.0.1:0, routes: [{ cluster: primary }] }
clusters:
  - name: primary
    endpoints: [127.0.0.1:{P}]
    breaker: { failure_rate: 0.5, minimum_requests: 4, slow_call_duration: 40ms, open_duration: 10s }
)",
                   {{"P", std::to_string(up.port())}}));
  EXPECT_EQ(send_gets(proxy.port(), 4), std::vector<int>(4, 200));  // slow but answered
  ASSERT_TRUE(state_is(proxy, 1));
  EXPECT_EQ(send_gets(proxy.port(), 1), std::vector<int>{503});
  EXPECT_EQ(up.requests(), 4);
}

}  // namespace
