#include "outrigger/observability/stats.hpp"

#include <gtest/gtest.h>

namespace outrigger::observability {
namespace {

TEST(Stats, SameLabelsGiveTheSameSeriesAcrossReloads) {
  Stats stats(2);
  auto* a = stats.route("inbound", "ingress", "root", "app");
  auto* b = stats.route("inbound", "ingress", "root", "app");
  EXPECT_EQ(a, b);
  EXPECT_NE(a, stats.route("inbound", "ingress", "other", "app"));
}

TEST(Stats, SumsWorkerSlicesWhenScraped) {
  Stats stats(2);
  auto* r = stats.route("inbound", "ingress", "root", "app");
  r->workers[0].record(200, std::chrono::microseconds(300), 10, 100);
  r->workers[1].record(200, std::chrono::microseconds(2000), 0, 50);
  r->workers[1].record(503, std::chrono::microseconds(20'000'000), 5, 0);
  stats.cluster("app")->workers[1].try_duration.observe(std::chrono::microseconds(700));
  const auto text = stats.scrape();
  EXPECT_NE(text.find("outrigger_requests_total{direction=\"inbound\",listener=\"ingress\",route=\"root\","
                      "cluster=\"app\",code=\"200\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("code=\"503\""), std::string::npos);
  EXPECT_NE(text.find("outrigger_request_duration_seconds_bucket{direction=\"inbound\",listener=\"ingress\","
                      "route=\"root\",cluster=\"app\",le=\"0.0005\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("le=\"+Inf\"} 3"), std::string::npos) << text;
  EXPECT_NE(text.find("outrigger_request_duration_seconds_count"), std::string::npos);
  EXPECT_NE(text.find("outrigger_request_body_bytes_total{direction=\"inbound\",listener=\"ingress\",route=\"root\","
                      "cluster=\"app\"} 15"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("outrigger_response_body_bytes_total{direction=\"inbound\",listener=\"ingress\",route=\"root\","
                      "cluster=\"app\"} 150"),
            std::string::npos);
  EXPECT_NE(text.find("outrigger_upstream_rq_duration_seconds_bucket{cluster=\"app\",le=\"0.001\"} 1"),
            std::string::npos)
      << text;
}

TEST(Stats, ExposesReloadsBuildInfoAndProcessMetrics) {
  Stats stats(1);
  stats.count_reload(true);
  stats.count_reload(false);
  stats.count_reload(false);
  const auto text = stats.scrape();
  EXPECT_NE(text.find("outrigger_config_reloads_total{result=\"success\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("outrigger_config_reloads_total{result=\"failure\"} 2"), std::string::npos);
  EXPECT_NE(text.find("outrigger_build_info{version="), std::string::npos);
  EXPECT_NE(text.find("process_resident_memory_bytes"), std::string::npos);
}

TEST(Stats, ExposesOverloadRefusalsShedRequestsAndHeadroom) {
  Stats stats(2);
  auto* l = stats.listener("ingress", "inbound");
  l->workers[0].count(ConnectionRefusal::max_downstream_connections);
  l->workers[1].count(ConnectionRefusal::max_downstream_connections);
  l->workers[1].count(ConnectionRefusal::max_connections);
  l->workers[0].shed_requests.inc(3);
  auto& o = stats.overload();
  o.downstream_connections = 7;
  o.max_downstream_connections = 100;
  o.max_requests_per_worker = 5;
  o.requests_in_flight[1].add(4);
  const auto text = stats.scrape();
  auto has = [&](const std::string& line) { return text.find(line + "\n") != std::string::npos; };
  EXPECT_TRUE(has("outrigger_downstream_connections_refused_total{direction=\"inbound\",listener=\"ingress\","
                  "reason=\"max_downstream_connections\"} 2"))
      << text;
  EXPECT_TRUE(has("outrigger_downstream_connections_refused_total{direction=\"inbound\",listener=\"ingress\","
                  "reason=\"max_connections\"} 1"));
  EXPECT_TRUE(has("outrigger_overload_shed_requests_total{direction=\"inbound\",listener=\"ingress\","
                  "reason=\"max_requests_per_worker\"} 3"));
  EXPECT_TRUE(has("outrigger_overload_downstream_connections 7"));
  EXPECT_TRUE(has("outrigger_overload_max_downstream_connections 100"));
  EXPECT_TRUE(has("outrigger_overload_max_requests_per_worker 5"));
  EXPECT_TRUE(has("outrigger_overload_requests_in_flight{worker=\"0\"} 0"));
  EXPECT_TRUE(has("outrigger_overload_requests_in_flight{worker=\"1\"} 4"));
}

TEST(Histogram, PutsObservationsInTheFirstBucketThatHoldsThem) {
  Histogram h;
  h.observe(std::chrono::microseconds(500));     // exactly 0.5 ms: le="0.0005"
  h.observe(std::chrono::microseconds(501));     // le="0.001"
  h.observe(std::chrono::seconds(11));           // +Inf
  EXPECT_EQ(h.bucket(0), 1u);
  EXPECT_EQ(h.bucket(1), 1u);
  EXPECT_EQ(h.bucket(Histogram::kBoundsSeconds.size()), 1u);
  EXPECT_EQ(h.sum_micros(), 500u + 501u + 11'000'000u);
}

}  // namespace
}  // namespace outrigger::observability

namespace outrigger::observability {
namespace {

TEST(AuthorityStats, CapsTheSeriesAndCountsTheRestAsOther) {
  AuthorityStats a(2);
  auto* x = a.find_or_add("x", 2);
  EXPECT_EQ(a.find_or_add("x", 2), x);
  auto* y = a.find_or_add("y", 2);
  auto* other = a.find_or_add("z", 2);
  EXPECT_NE(other, x);
  EXPECT_NE(other, y);
  EXPECT_EQ(a.find_or_add("w", 2), other);
  (*x)[0].inc();
  (*x)[1].inc(2);
  (*other)[1].inc();
  std::vector<std::pair<std::string, std::uint64_t>> seen;
  a.for_each([&](const std::string& n, std::uint64_t v) { seen.emplace_back(n, v); });
  EXPECT_EQ(seen, (std::vector<std::pair<std::string, std::uint64_t>>{{"x", 3}, {"y", 0}, {"other", 1}}));
}

}  // namespace
}  // namespace outrigger::observability
