// The filter framework as a filter author sees it, through a real proxy: a
// test filter (registered like any other type) that suspends, keeps
// per-request state, watches bodies, and stamps every response it sees.
#include <gtest/gtest.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <future>

#include "outrigger/config/yaml_reader.hpp"
#include "outrigger/http/filter.hpp"
#include "support/net.hpp"

namespace {

using namespace testing_support;
using namespace outrigger;

// What the probe saw, across workers.
struct ProbeLog {
  std::atomic<std::uint64_t> request_body_bytes{0}, response_body_bytes{0};
  std::atomic<int> request_body_ends{0}, response_body_ends{0};
};
ProbeLog probe_log;

// Per-request: the target the request had when the probe saw it.
struct ProbeState {
  std::string target;
};

class Probe final : public http::Filter {
 public:
  http::awaitable<http::FilterResult> on_request(http::Exchange& ex) override {
    const std::string target(ex.request.target());
    if (target.starts_with("/slow")) {
      // A remote check, say: the worker serves other requests meanwhile.
      boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, std::chrono::milliseconds(400));
      co_await t.async_wait(boost::asio::use_awaitable);
    }
    ex.state.emplace<ProbeState>(ProbeState{target});
    if (target == "/deny") co_return http::LocalReply{418, "denied by the probe\n", "probe_denied"};
    co_return std::nullopt;
  }
  void on_response(http::Exchange& ex, http::ResponseHeader& response) override {
    const auto* state = ex.state.get<ProbeState>();
    response.set("x-probe-target", state ? state->target : "none");
  }
  bool observes_bodies() const override { return true; }
  void on_request_body(http::Exchange&, std::span<const char> data, bool end) override {
    probe_log.request_body_bytes += data.size();
    if (end) ++probe_log.request_body_ends;
  }
  void on_response_body(http::Exchange&, std::span<const char> data, bool end) override {
    probe_log.response_body_bytes += data.size();
    if (end) ++probe_log.response_body_ends;
  }
};

class ProbeFactory final : public http::FilterFactory {
 public:
  std::unique_ptr<http::Filter> make_filter(unsigned) const override { return std::make_unique<Probe>(); }
};

struct RegisterProbe {
  RegisterProbe() {
    http::add_filter_type("probe", [](const config::FilterSpec&, const http::FilterContext&, config::YamlReader&) {
      return std::make_unique<ProbeFactory>();
    });
  }
} register_probe;

std::string config_for(std::uint16_t upstream) {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    filters: [{ type: probe }]
    routes:
      - { name: hello, match: { path: /hello }, direct_response: { status: 200, body: "hi\n" } }
      - { name: gone, match: { prefix: /gone }, cluster: gone }
      - { name: api, match: { prefix: /api }, cluster: app }
      - { name: slow, match: { prefix: /slow }, cluster: app }
      - { name: deny, match: { path: /deny }, cluster: app }
clusters:
  - { name: app, endpoints: [127.0.0.1:{UP}] }
  - { name: gone, endpoints: [127.0.0.1:{GONE}], connect_timeout: 200ms }
)",
              {{"UP", std::to_string(upstream)}, {"GONE", std::to_string(closed_port())}});
}

TEST(FilterFramework, OnResponseSeesEveryResponseLocalRepliesIncluded) {
  FakeUpstream up;
  Proxy proxy(config_for(up.port()));
  const std::pair<const char*, int> cases[] = {
      {"/api/x", 200},     // proxied
      {"/hello", 200},     // a direct response
      {"/nowhere", 404},   // no route: the filters ran all the same
      {"/gone/x", 503},    // the router's error
      {"/deny", 418},      // the filter's own reply
  };
  for (const auto& [target, status] : cases) {
    auto res = http_get(proxy.port(), target);
    ASSERT_TRUE(res) << target;
    EXPECT_EQ(res->result_int(), status) << target;
    EXPECT_EQ((*res)["x-probe-target"], target);
  }
  EXPECT_EQ(up.requests(), 1);  // only /api/x reached the upstream
}

TEST(FilterFramework, ASuspendedFilterNeitherBlocksTheWorkerNorMixesUpRequests) {
  FakeUpstream up;
  Proxy proxy(config_for(up.port()));  // one worker
  auto slow = std::async(std::launch::async, [&] { return http_get(proxy.port(), "/slow/1"); });
  // While the probe waits on /slow/1, the same worker (and the same filter
  // object) serves other requests to the end.
  for (int i = 0; i < 5; ++i) {
    auto fast = http_get(proxy.port(), "/api/fast" + std::to_string(i));
    ASSERT_TRUE(fast);
    EXPECT_EQ((*fast)["x-probe-target"], "/api/fast" + std::to_string(i));
  }
  EXPECT_EQ(slow.wait_for(std::chrono::seconds(0)), std::future_status::timeout);  // still suspended
  auto res = slow.get();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200);
  EXPECT_EQ((*res)["x-probe-target"], "/slow/1");  // its own state, not the last request's
}

TEST(FilterFramework, BodyHooksSeeEveryByteBothWays) {
  FakeUpstream up([](FakeUpstream::Exchange& ex) { FakeUpstream::reply(ex, 200, std::string(50'000, 'r')); });
  Proxy proxy(config_for(up.port()));
  const auto before_req = probe_log.request_body_bytes.load(), before_res = probe_log.response_body_bytes.load();
  const auto ends = probe_log.response_body_ends.load();
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("POST", "/api/upload", {}, std::string(30'000, 'q'))));
  auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body().size(), 50'000u);
  EXPECT_TRUE(eventually([&] { return probe_log.response_body_ends.load() == ends + 1; }));
  EXPECT_EQ(probe_log.request_body_bytes.load() - before_req, 30'000u);
  EXPECT_EQ(probe_log.response_body_bytes.load() - before_res, 50'000u);
}

TEST(FilterFramework, LocalRepliesCountTheirBodyBytesLikeProxiedOnes) {
  FakeUpstream up;
  Proxy proxy(config_for(up.port()));
  ASSERT_TRUE(http_get(proxy.port(), "/deny"));
  ASSERT_TRUE(http_get(proxy.port(), "/nowhere"));
  const std::string deny = "outrigger_response_body_bytes_total{direction=\"inbound\",listener=\"ingress\",route=\"deny\","
                           "cluster=\"app\"} 20";
  const std::string nowhere = "outrigger_response_body_bytes_total{direction=\"inbound\",listener=\"ingress\",route=\"\","
                              "cluster=\"\"} 30";  // "no route matched this request\n"
  EXPECT_TRUE(eventually([&] {
    const auto text = metrics(proxy);
    return has(text, deny) && has(text, nowhere);
  })) << metrics(proxy);
}

}  // namespace
