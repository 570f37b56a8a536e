// Endpoint health as clients and upstreams see it: outlier detection ejects an
// endpoint that keeps failing and brings it back; active health checks take an
// endpoint out and put it back; /clusters and /metrics show both.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "support/net.hpp"

namespace {

using namespace testing_support;

// An upstream whose answers to traffic and to /healthz can be switched, and
// which counts the traffic apart from the checks.
struct Backend {
  std::atomic<int> status{200};
  std::atomic<int> health{200};
  std::atomic<int> traffic{0};
  std::atomic<int> checks{0};
  FakeUpstream server{[this](FakeUpstream::Exchange& ex) {
    if (ex.request.target() == "/healthz") {
      ++checks;
      return FakeUpstream::reply(ex, health.load(), "health");
    }
    ++traffic;
    FakeUpstream::reply(ex, status.load(), "port " + std::to_string(server.port()));
  }};
  std::string address() const { return "127.0.0.1:" + std::to_string(server.port()); }
};

std::string config(const std::vector<const Backend*>& backends, const std::string& cluster_extra) {
  std::string endpoints;
  for (const auto* b : backends) endpoints += (endpoints.empty() ? "" : ", ") + b->address();
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - { name: ingress, address: 127.0.0.1:0, routes: [{ name: r, cluster: app }] }
clusters:
  - name: app
    endpoints: [{EPS}]
{EXTRA}
)",
              {{"EPS", endpoints}, {"EXTRA", cluster_extra}});
}


std::string healthy_series(const Backend& b) {
  return "outrigger_endpoint_healthy{cluster=\"app\",endpoint=\"" + b.address() + "\"} ";
}

boost::json::object endpoint_json(Proxy& proxy, const Backend& b) {
  const auto doc = boost::json::parse(http_get(proxy.admin_port(), "/clusters")->body());
  for (const auto& e : doc.at("clusters").at(0).at("endpoints").as_array())
    if (e.at("address").as_string() == b.address()) return e.as_object();
  return {};
}

TEST(OutlierDetection, EjectsAFailingEndpointAndTakesItBack) {
  Backend bad, good;
  bad.status = 503;
  Proxy proxy(config({&bad, &good},
                     "    outlier_detection: { consecutive_gateway_failure: 3, base_ejection_time: 400ms, "
                     "max_ejection_percent: 50 }"));
  // Round robin: every other request goes to the bad endpoint until its third 503.
  auto first = send_gets(proxy.port(), 6);
  EXPECT_EQ(std::count(first.begin(), first.end(), 503), 3);
  EXPECT_EQ(bad.traffic, 3);
  EXPECT_EQ(send_gets(proxy.port(), 20), std::vector<int>(20, 200));  // ejected: all to the good one
  EXPECT_EQ(bad.traffic, 3);
  const auto text = metrics(proxy);
  EXPECT_TRUE(has(text, "outrigger_outlier_ejections_total{cluster=\"app\"} 1")) << text;
  EXPECT_TRUE(has(text, healthy_series(bad) + "0")) << text;
  EXPECT_TRUE(has(text, healthy_series(good) + "1")) << text;
  const auto ep = endpoint_json(proxy, bad);
  EXPECT_EQ(ep.at("ejected").as_bool(), true);
  EXPECT_EQ(ep.at("health").as_string(), "healthy");

  // Its time is up: it takes traffic again.
  bad.status = 200;
  EXPECT_TRUE(eventually([&] { return !endpoint_json(proxy, bad).at("ejected").as_bool(); }));
  EXPECT_EQ(send_gets(proxy.port(), 10), std::vector<int>(10, 200));
  EXPECT_GE(bad.traffic, 3 + 4);
  EXPECT_TRUE(has(metrics(proxy), healthy_series(bad) + "1"));
  EXPECT_EQ(endpoint_json(proxy, bad).at("ejected").as_bool(), false);
}

TEST(OutlierDetection, ConnectFailuresCountAndRetriesGoElsewhere) {
  Backend good;
  const std::string dead = "127.0.0.1:" + std::to_string(closed_port());
  Proxy proxy(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes: [{ name: r, cluster: app, retry: { retry_on: [connect-failure], num_retries: 1, backoff: { base: 1ms } } }]
clusters:
  - name: app
    endpoints: [{DEAD}, {GOOD}]
    outlier_detection: { consecutive_gateway_failure: 2, base_ejection_time: 10s, max_ejection_percent: 50 }
)",
                   {{"DEAD", dead}, {"GOOD", good.address()}}));
  EXPECT_EQ(send_gets(proxy.port(), 20), std::vector<int>(20, 200));  // retries hide the dead endpoint
  EXPECT_TRUE(has(metrics(proxy), "outrigger_outlier_ejections_total{cluster=\"app\"} 1"));
  const auto text = metrics(proxy);
  EXPECT_TRUE(has(text, "outrigger_upstream_connect_failures_total{cluster=\"app\"} 2")) << text;
}

TEST(OutlierDetection, NeverEjectsBeyondTheMaxPercent) {
  Backend a, b;
  a.status = b.status = 503;
  Proxy proxy(config({&a, &b},
                     "    outlier_detection: { consecutive_gateway_failure: 2, base_ejection_time: 10s, "
                     "max_ejection_percent: 50 }"));
  send_gets(proxy.port(), 20);
  EXPECT_TRUE(has(metrics(proxy), "outrigger_outlier_ejections_total{cluster=\"app\"} 1"));
  EXPECT_GT(a.traffic + b.traffic, 4);  // one stayed in service
}

TEST(HealthCheck, MarksAnEndpointDownAndUp) {
  Backend flaky, steady;
  Proxy proxy(config({&flaky, &steady},
                     "    health_check: { path: /healthz, interval: 50ms, timeout: 500ms, unhealthy_threshold: 2, "
                     "healthy_threshold: 2 }"));
  ASSERT_TRUE(eventually([&] { return flaky.checks >= 1 && steady.checks >= 1; }));
  EXPECT_EQ(flaky.server.last_request()["user-agent"], "outrigger-health-check");

  flaky.health = 503;
  ASSERT_TRUE(eventually([&] { return has(metrics(proxy), healthy_series(flaky) + "0"); }));
  EXPECT_EQ(endpoint_json(proxy, flaky).at("health").as_string(), "unhealthy");
  const int before = flaky.traffic;
  EXPECT_EQ(send_gets(proxy.port(), 20), std::vector<int>(20, 200));
  EXPECT_EQ(flaky.traffic, before);
  EXPECT_EQ(steady.traffic, 20);

  flaky.health = 200;
  ASSERT_TRUE(eventually([&] { return has(metrics(proxy), healthy_series(flaky) + "1"); }));
  EXPECT_EQ(send_gets(proxy.port(), 20), std::vector<int>(20, 200));
  EXPECT_EQ(flaky.traffic, 10);
}

TEST(HealthCheck, AnEndpointThatStopsListeningGoesDown) {
  Backend steady;
  const std::string dead = "127.0.0.1:" + std::to_string(closed_port());
  Proxy proxy(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - { name: ingress, address: 127.0.0.1:0, routes: [{ cluster: app }] }
clusters:
  - name: app
    endpoints: [{DEAD}, {GOOD}]
    health_check: { path: /healthz, interval: 50ms, timeout: 200ms, unhealthy_threshold: 1 }
)",
                   {{"DEAD", dead}, {"GOOD", steady.address()}}));
  ASSERT_TRUE(eventually([&] {
    return has(metrics(proxy), "outrigger_endpoint_healthy{cluster=\"app\",endpoint=\"" + dead + "\"} 0");
  }));
  EXPECT_EQ(send_gets(proxy.port(), 10), std::vector<int>(10, 200));
}

TEST(HealthCheck, NoHealthyEndpointAnswers503) {
  Backend only;
  only.health = 500;
  Proxy proxy(config({&only}, "    health_check: { path: /healthz, interval: 50ms, unhealthy_threshold: 1 }"));
  ASSERT_TRUE(eventually([&] { return has(metrics(proxy), healthy_series(only) + "0"); }));
  auto res = http_get(proxy.port(), "/x");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 503);
  EXPECT_EQ((*res)["x-outrigger-error"], "no_healthy_upstream");
  EXPECT_EQ(only.traffic, 0);
}

TEST(HealthCheck, AReloadThatDropsTheCheckBringsEndpointsBack) {
  Backend only;
  only.health = 500;
  const auto with_check =
      config({&only}, "    health_check: { path: /healthz, interval: 50ms, unhealthy_threshold: 1 }");
  Proxy proxy(with_check);
  ASSERT_TRUE(eventually([&] { return has(metrics(proxy), healthy_series(only) + "0"); }));
  // Same endpoints, same check: the verdict survives the reload.
  ASSERT_TRUE(proxy.server().reload(parse_config(with_check)).empty());
  EXPECT_EQ(http_get(proxy.port(), "/x")->result_int(), 503);
  // No check any more: the endpoint takes traffic again.
  ASSERT_TRUE(proxy.server().reload(parse_config(config({&only}, ""))).empty());
  EXPECT_EQ(http_get(proxy.port(), "/x")->result_int(), 200);
}

}  // namespace

namespace {

TEST(OutlierDetection, AReloadWithoutItPutsEjectedEndpointsBack) {
  Backend bad, good;
  bad.status = 503;
  Proxy proxy(config({&bad, &good},
                     "    outlier_detection: { consecutive_gateway_failure: 1, base_ejection_time: 60s, "
                     "max_ejection_percent: 50 }"));
  send_gets(proxy.port(), 4);
  ASSERT_TRUE(has(metrics(proxy), healthy_series(bad) + "0"));
  bad.status = 200;
  ASSERT_TRUE(proxy.server().reload(parse_config(config({&bad, &good}, ""))).empty());
  const int before = bad.traffic;
  EXPECT_EQ(send_gets(proxy.port(), 10), std::vector<int>(10, 200));
  EXPECT_EQ(bad.traffic, before + 5);
  EXPECT_TRUE(has(metrics(proxy), healthy_series(bad) + "1"));
}

}  // namespace
