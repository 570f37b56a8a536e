// The admin listener: health, Prometheus metrics, config dump, clusters.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "support/net.hpp"

namespace {

using namespace testing_support;

class Admin : public ::testing::Test {
 protected:
  Admin()
      : proxy_(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 2
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes:
      - { name: api, match: { prefix: /api }, cluster: app }
clusters:
  - { name: app, endpoints: [127.0.0.1:{UP}] }
)",
                    {{"UP", std::to_string(up_.port())}})) {}

  std::string admin(const std::string& path, int expect = 200) {
    auto res = http_get(proxy_.admin_port(), path);
    EXPECT_TRUE(res) << path;
    if (!res) return "";
    EXPECT_EQ(res->result_int(), expect) << path;
    return res->body();
  }

  // Metrics are counted just after a response is written: a scrape right
  // after the last response may come first, so wait (bounded) for `series`.
  std::string metrics_with(const std::string& series) {
    std::string text;
    for (int i = 0; i < 200; ++i) {
      text = admin("/metrics");
      if (text.find(series) != std::string::npos) break;
      std::this_thread::sleep_for(10ms);
    }
    return text;
  }

  FakeUpstream up_;
  Proxy proxy_;
};

TEST_F(Admin, QuitquitquitDrainsAndExits) {
  // What the application of a Job runs when it is done, so that the pod completes.
  auto s = Socket::connect(proxy_.admin_port());
  ASSERT_TRUE(s.send(request_text("GET", "/quitquitquit")));
  auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 405);  // only a POST ends the proxy
  EXPECT_EQ(admin("/ready"), "ready\n");
  auto q = Socket::connect(proxy_.admin_port());
  ASSERT_TRUE(q.send(request_text("POST", "/quitquitquit", {{"Content-Length", "0"}})));
  res = q.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200);
  EXPECT_EQ(res->body(), "draining\n");
  EXPECT_EQ(proxy_.wait_exit(5s), 0);
}

TEST_F(Admin, AnswersReadyAndLive) {
  EXPECT_EQ(admin("/ready"), "ready\n");
  EXPECT_EQ(admin("/live"), "live\n");
  admin("/nope", 404);
}

TEST_F(Admin, CountsRequestsByListenerRouteClusterAndCode) {
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(http_get(proxy_.port(), "/api/x"));
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(http_get(proxy_.port(), "/missing"));
  const auto text = metrics_with("code=\"404\"} 2");
  EXPECT_NE(text.find("outrigger_requests_total{direction=\"inbound\",listener=\"ingress\",route=\"api\","
                      "cluster=\"app\",code=\"200\"} 7"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("outrigger_requests_total{direction=\"inbound\",listener=\"ingress\",route=\"\","
                      "cluster=\"\",code=\"404\"} 2"),
            std::string::npos);
  EXPECT_NE(text.find("outrigger_request_duration_seconds_count{direction=\"inbound\",listener=\"ingress\","
                      "route=\"api\",cluster=\"app\"} 7"),
            std::string::npos);
  EXPECT_NE(text.find("outrigger_request_duration_seconds_bucket{"), std::string::npos);
  EXPECT_NE(text.find("outrigger_downstream_connections_active{direction=\"inbound\",listener=\"ingress\",tls=\"false\"}"),
            std::string::npos);
  EXPECT_NE(text.find("outrigger_downstream_connections_total{direction=\"inbound\",listener=\"ingress\",tls=\"false\"} 9"),
            std::string::npos);
  EXPECT_NE(text.find("outrigger_upstream_connections_active{cluster=\"app\"}"), std::string::npos);
  EXPECT_NE(text.find("outrigger_upstream_requests_total{cluster=\"app\"} 7"), std::string::npos);
  EXPECT_NE(text.find("outrigger_config_reloads_total{result=\"success\"} 0"), std::string::npos);
  EXPECT_NE(text.find("outrigger_build_info{version=\"0.1.0\"} 1"), std::string::npos);
  EXPECT_EQ(admin("/stats/prometheus").substr(0, 40), text.substr(0, 40));
}

TEST_F(Admin, DumpsTheRunningConfigAsJson) {
  const auto dump = boost::json::parse(admin("/config_dump"));
  EXPECT_EQ(dump.at("listeners").at(0).at("name").as_string(), "ingress");
  EXPECT_EQ(dump.at("listeners").at(0).at("routes").at(0).at("cluster").as_string(), "app");
  EXPECT_EQ(dump.at("clusters").at(0).at("name").as_string(), "app");
  EXPECT_EQ(dump.at("workers").to_number<int>(), 2);
}

TEST_F(Admin, ListsClustersAndTheirEndpoints) {
  ASSERT_TRUE(http_get(proxy_.port(), "/api/x"));
  const auto clusters = boost::json::parse(admin("/clusters"));
  const auto& app = clusters.at("clusters").at(0);
  EXPECT_EQ(app.at("name").as_string(), "app");
  EXPECT_EQ(app.at("endpoints").at(0).at("address").as_string(), "127.0.0.1:" + std::to_string(up_.port()));
  EXPECT_EQ(app.at("requests").to_number<int>(), 1);
}

}  // namespace
