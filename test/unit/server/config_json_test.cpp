// /config_dump writes a config that loads back as the same config.
#include <gtest/gtest.h>

#include <yaml-cpp/yaml.h>

#include "outrigger/config/loader.hpp"
#include "outrigger/server/admin.hpp"

namespace outrigger::server {
namespace {

constexpr std::string_view kEverything = R"(
workers: 2
tracing: { service_name: shop, collector_cluster: spare, sample_rate: 0.25, propagation: [w3c, b3], max_queue_spans: 500,
           flush_interval: 250ms, max_batch_spans: 50 }
listeners:
  - name: ingress
    address: 127.0.0.1:8080
    trust_request_headers: true
    path_with_escaped_slashes_action: unescape
    filters:
      - { type: tracing }
      - type: local_rate_limit
        tokens_per_second: 10
        key: x-user
      - type: rbac
        mode: shadow
        roles: { reader: [{ methods: [GET], paths: ["/api/*"] }] }
        bindings: [{ role: reader, principals: [{ source_ip: 10.0.0.0/8 }, { any: true }] }]
      - { type: fault, abort: { status: 503, percent: 1 } }
    routes:
      - name: api
        match: { prefix: /api, methods: [GET], headers: [{ name: x-v, exact: "2" }] }
        cluster: app
        per_filter_config: { fault: { delay: { fixed: 1s } }, rbac: { disabled: true } }
        timeout: 2s
        retry: { retry_on: [5xx, reset], retriable_status_codes: [409], num_retries: 2, per_try_timeout: 500ms,
                 backoff: { base: 10ms, max: 100ms }, retriable_methods: [GET, PUT] }
        retry_buffer_limit: 1024
        fallback: { cluster: spare }
      - name: split
        weighted_clusters: [{ cluster: app, weight: 9 }, { cluster: spare, weight: 1 }]
        fallback: { status: 200, body: "[]", headers: { content-type: application/json } }
      - name: static
        direct_response: { status: 204 }
      - name: ws
        match: { prefix: /ws }
        cluster: app
        upgrade: [websocket, spdy/3]
  - name: db
    address: 127.0.0.1:8081
    protocol: tcp
    cluster: app
    tunnel_idle_timeout: 10m
  - name: outbound
    address: 127.0.0.1:15001
    direction: outbound
    original_destination: true
    passthrough: deny
    detect_timeout: 250ms
    opaque_ports: [3306, 5432]
    sni: [{ names: [a.test, "*.b.test"], cluster: spare }]
  - name: inbound
    address: 127.0.0.1:15006
    original_destination: true
    application_address: 127.0.0.2
socket_mark: 1337
clusters:
  - name: app
    endpoints: [127.0.0.1:1, { address: 127.0.0.1:2, weight: 3 }]
    lb_policy: least_request
    circuit_breakers: { max_connections: 10, max_pending_requests: 5, max_requests: 20, max_retries: 2 }
    retry_budget: { ratio: 0.5, min_retries_per_second: 2 }
    breaker: { failure_rate: 0.25, minimum_requests: 5, window: 20s, slow_call_duration: 1s, open_duration: 5s,
               half_open_requests: 2 }
    outlier_detection: { consecutive_5xx: 4, consecutive_gateway_failure: 0, interval: 5s, base_ejection_time: 10s,
                         max_ejection_time: 60s, max_ejection_percent: 50 }
    health_check: { path: /healthz, host: app.local, interval: 2s, timeout: 300ms, unhealthy_threshold: 2,
                    healthy_threshold: 3 }
  - { name: spare, endpoints: [127.0.0.1:3] }
  - name: reviews
    type: strict_dns
    endpoints: [reviews.default.svc.cluster.local:9080]
    dns_refresh_rate: 2s
    dns_timeout: 1s
    respect_dns_ttl: false
    dns_lookup_family: all
    dns_resolvers: [127.0.0.1:5353, "[::1]:53"]
  - { name: ratings, type: logical_dns, endpoints: [ratings.test:80] }
)";

TEST(ConfigDump, LoadsBackAsTheSameConfig) {
  auto first = config::load_string(kEverything, "a.yaml");
  ASSERT_TRUE(first.ok()) << first.errors.front().to_string();
  const auto dump = config_to_json(*first.config);
  auto again = config::load_string(dump, "a.yaml");  // JSON is YAML
  ASSERT_TRUE(again.ok()) << again.errors.front().to_string() << "\n" << dump;
  EXPECT_EQ(config_to_json(*again.config), dump);
  // Spot checks that the sections are really there.
  EXPECT_NE(dump.find("\"outlier_detection\""), std::string::npos);
  EXPECT_NE(dump.find("\"health_check\""), std::string::npos);
  EXPECT_NE(dump.find("\"breaker\""), std::string::npos);
  EXPECT_NE(dump.find("\"fallback\""), std::string::npos);
  EXPECT_NE(dump.find("\"retriable_status_codes\":[409]"), std::string::npos);
  EXPECT_NE(dump.find("\"trust_request_headers\":true"), std::string::npos);
  EXPECT_NE(dump.find("\"path_with_escaped_slashes_action\":\"unescape\""), std::string::npos);
  // Filters as they were written, tracing whole.
  EXPECT_NE(dump.find("{\"type\":\"local_rate_limit\",\"tokens_per_second\":\"10\",\"key\":\"x-user\"}"),
            std::string::npos)
      << dump;
  EXPECT_NE(dump.find("\"source_ip\":\"10.0.0.0/8\""), std::string::npos);
  EXPECT_NE(dump.find("\"propagation\":[\"w3c\",\"b3\"]"), std::string::npos);
  EXPECT_NE(dump.find("\"flush_interval\":\"250ms\""), std::string::npos);
  EXPECT_NE(dump.find("\"socket_mark\":1337"), std::string::npos);
  EXPECT_NE(dump.find("\"per_filter_config\":{\"fault\":{\"delay\":{\"fixed\":\"1s\"}},\"rbac\":{\"disabled\":true}}"),
            std::string::npos)
      << dump;
  EXPECT_NE(dump.find("\"upgrade\":[\"websocket\",\"spdy/3\"]"), std::string::npos);
  EXPECT_NE(dump.find("\"protocol\":\"tcp\""), std::string::npos);
  EXPECT_NE(dump.find("\"passthrough\":\"deny\""), std::string::npos);
  EXPECT_NE(dump.find("\"opaque_ports\":[3306,5432]"), std::string::npos);
  EXPECT_NE(dump.find("\"application_address\":\"127.0.0.2:0\""), std::string::npos);
  EXPECT_NE(dump.find("\"type\":\"strict_dns\""), std::string::npos) << dump;
  EXPECT_NE(dump.find("\"respect_dns_ttl\":false"), std::string::npos) << dump;
  EXPECT_NE(dump.find("\"dns_resolvers\":[\"127.0.0.1:5353\",\"[::1]:53\"]"), std::string::npos) << dump;
  EXPECT_NE(dump.find("\"type\":\"logical_dns\""), std::string::npos);
  const auto& reloaded = *again.config;
  ASSERT_EQ(reloaded.listeners[0].filters.size(), 4u);
  EXPECT_EQ(reloaded.listeners[0].filters[2].type, "rbac");
  EXPECT_EQ(reloaded.listeners[0].filters[3].type, "fault");
  EXPECT_EQ((*reloaded.listeners[0].filters[2].node)["mode"].as<std::string>(), "shadow");
  ASSERT_TRUE(reloaded.tracing);
  EXPECT_EQ(reloaded.tracing->sample_rate, 0.25);
}

}  // namespace
}  // namespace outrigger::server
