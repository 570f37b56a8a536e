#include "outrigger/config/loader.hpp"

#include <gtest/gtest.h>

#include <filesystem>

namespace outrigger::config {
namespace {

using namespace std::chrono_literals;

LoadResult load(std::string_view yaml) { return load_string(yaml, "test.yaml"); }

std::vector<std::string> messages(const LoadResult& r) {
  std::vector<std::string> out;
  for (const auto& e : r.errors) out.push_back(e.to_string());
  return out;
}

// True when some error line contains `part`.
bool has_error(const LoadResult& r, std::string_view part) {
  for (const auto& m : messages(r))
    if (m.find(part) != std::string::npos) return true;
  return false;
}

constexpr std::string_view kMinimal = R"(
listeners:
  - name: ingress
    address: 127.0.0.1:10000
    routes:
      - cluster: app
clusters:
  - name: app
    endpoints: [127.0.0.1:8080]
)";

TEST(ConfigLoader, LoadsAMinimalConfigWithDefaults) {
  auto r = load(kMinimal);
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  const auto& c = *r.config;
  EXPECT_GE(c.workers, 1u);
  EXPECT_EQ(c.admin.address.port, 9901);
  EXPECT_FALSE(c.access_log.enabled);
  EXPECT_EQ(c.drain_timeout, 5s);
  ASSERT_EQ(c.listeners.size(), 1u);
  const auto& l = c.listeners[0];
  EXPECT_EQ(l.direction, Direction::inbound);
  EXPECT_EQ(l.max_request_line_bytes, 8u * 1024);
  EXPECT_EQ(l.max_request_headers_bytes, 60u * 1024);
  EXPECT_EQ(l.request_headers_timeout, 10s);
  ASSERT_EQ(l.routes.size(), 1u);
  EXPECT_EQ(l.routes[0].name, "ingress/0");
  EXPECT_EQ(l.routes[0].timeout, 15s);
  EXPECT_EQ(c.clusters[0].connect_timeout, 1s);
  EXPECT_EQ(c.find_cluster("app"), &c.clusters[0]);
}

TEST(ConfigLoader, ReadsEveryListenerRouteAndClusterKey) {
  auto r = load(R"(
admin: { address: "[::1]:9902" }
workers: 3
log_level: debug
drain_timeout: 250ms
access_log: { path: /tmp/x.log, format: text, text_format: "%METHOD%" }
listeners:
  - name: out
    address: 127.0.0.1:0
    direction: outbound
    max_request_line_bytes: 1024
    max_request_headers_bytes: 4096
    request_headers_timeout: 2s
    idle_timeout: 1m
    filters: [{ type: something, key: value }]
    routes:
      - name: r
        match:
          regex: "/u/[0-9]+"
          hosts: [a.example.com]
          methods: [get, POST]
          headers: [{ name: X-Env, exact: canary }, { name: x-gone, absent: true }]
        cluster: c
        timeout: 0
        request_headers_to_add: { X-A: b }
        request_headers_to_remove: [X-B]
      - name: d
        direct_response: { status: 418, body: teapot, headers: { content-type: text/plain } }
clusters:
  - name: c
    endpoints: [127.0.0.1:1, "[::1]:2", localhost:3]
    connect_timeout: 100ms
    connection_pool: { max_idle_per_endpoint: 4, idle_timeout: 10s, max_requests_per_connection: 100 }
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  const auto& c = *r.config;
  EXPECT_EQ(c.admin.address, (core::Address{"::1", 9902}));
  EXPECT_EQ(c.workers, 3u);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.drain_timeout, 250ms);
  EXPECT_TRUE(c.access_log.enabled);
  EXPECT_EQ(c.access_log.format, AccessLogFormat::text);
  const auto& l = c.listeners[0];
  EXPECT_EQ(l.direction, Direction::outbound);
  EXPECT_EQ(l.address.port, 0);
  EXPECT_EQ(l.max_request_line_bytes, 1024u);
  EXPECT_EQ(l.idle_timeout, 1min);
  ASSERT_EQ(l.filters.size(), 1u);
  EXPECT_EQ(l.filters[0].type, "something");
  EXPECT_EQ(l.filters[0].mark.line, 15);
  const auto& rt = l.routes[0];
  EXPECT_EQ(*rt.match.regex, "/u/[0-9]+");
  EXPECT_EQ(rt.match.methods, (std::vector<std::string>{"GET", "POST"}));
  EXPECT_EQ(rt.match.headers[0].name, "x-env");
  EXPECT_TRUE(rt.match.headers[1].invert);
  EXPECT_EQ(rt.timeout, 0ms);
  EXPECT_EQ(rt.request_headers_to_add[0].name, "x-a");
  EXPECT_EQ(rt.request_headers_to_remove[0], "x-b");
  EXPECT_EQ(l.routes[1].direct_response->status, 418);
  EXPECT_EQ(c.clusters[0].endpoints.size(), 3u);
  EXPECT_EQ(c.clusters[0].connection_pool.max_requests_per_connection, 100u);
}

TEST(ConfigLoader, ReadsDnsClusters) {
  auto r = load(R"(
clusters:
  - name: reviews
    type: strict_dns
    endpoints: [reviews.default.svc.cluster.local:9080, { address: 192.0.2.1:80, weight: 2 }]
    dns_refresh_rate: 250ms
    dns_lookup_family: v4_only
    dns_resolvers: [127.0.0.1:5353, 192.0.2.53]
  - { name: one, type: logical_dns, endpoints: [one.test:443] }
  - { name: plain, endpoints: [localhost:80] }
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  const auto& c = r.config->clusters;
  EXPECT_EQ(c[0].type, ClusterType::strict_dns);
  EXPECT_EQ(c[0].dns.refresh_rate, 250ms);
  EXPECT_TRUE(c[0].dns.respect_ttl);
  EXPECT_EQ(c[0].dns.lookup_family, DnsLookupFamily::v4_only);
  ASSERT_EQ(c[0].dns.resolvers.size(), 2u);
  EXPECT_EQ(c[0].dns.resolvers[1].to_string(), "192.0.2.53:53");
  EXPECT_EQ(c[0].endpoints[0].address.host, "reviews.default.svc.cluster.local");
  EXPECT_EQ(c[1].type, ClusterType::logical_dns);
  EXPECT_EQ(c[1].dns.lookup_family, DnsLookupFamily::v4_preferred);
  EXPECT_EQ(c[2].type, ClusterType::static_);
}

TEST(ConfigLoader, RejectsDnsKeysWhereTheyDoNotApply) {
  auto r = load(R"(
clusters:
  - { name: a, endpoints: [localhost:80], dns_refresh_rate: 1s }
  - { name: b, type: logical_dns, endpoints: [x.test:80, y.test:80] }
  - { name: c, type: strict_dns, endpoints: [x.test:80], dns_resolvers: [dns.test:53], dns_lookup_family: v5 }
  - { name: d, type: dns, endpoints: [x.test:80] }
)");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has_error(r, "test.yaml:3:")) << ::testing::PrintToString(messages(r));
  EXPECT_TRUE(has_error(r, "clusters[0].dns_refresh_rate: only for clusters of type strict_dns or logical_dns"));
  EXPECT_TRUE(has_error(r, "clusters[1].endpoints: a logical_dns cluster has one endpoint"));
  EXPECT_TRUE(has_error(r, "clusters[2].dns_resolvers: invalid resolver 'dns.test:53': not an IP address"));
  EXPECT_TRUE(has_error(r, "clusters[2].dns_lookup_family: invalid value 'v5'"));
  EXPECT_TRUE(has_error(r, "clusters[3].type: invalid value 'dns'"));
}

constexpr std::string_view kPerFilter = R"(
listeners:
  - name: ingress
    address: 127.0.0.1:10000
    filters:
      - { type: rbac, default: allow }
      - { type: fault, abort: { status: 503 } }
      - { type: fault, delay: { fixed: 1s } }
    routes:
      - name: quiet
        match: { prefix: /health }
        cluster: app
        per_filter_config: { fault: { disabled: true } }
      - name: slow
        cluster: app
        per_filter_config: { fault: { delay: { fixed: 2s } } }
clusters:
  - name: app
    endpoints: [127.0.0.1:8080]
)";

TEST(ConfigLoader, ReadsPerFilterConfigOfRoutes) {
  auto r = load(kPerFilter);
  ASSERT_TRUE(r.ok()) << messages(r).front();
  const auto& routes = r.config->listeners[0].routes;
  EXPECT_EQ(routes[0].disabled_filters, (std::vector<bool>{false, true, true}));  // every fault filter
  EXPECT_TRUE(routes[0].per_filter_config.empty());
  EXPECT_TRUE(routes[1].disabled_filters.empty());
  ASSERT_EQ(routes[1].per_filter_config.size(), 1u);
  EXPECT_EQ(routes[1].per_filter_config[0].type, "fault");
  EXPECT_EQ(routes[1].per_filter_config[0].mark.line, 16);
}

TEST(ConfigLoader, ReportsPerFilterConfigMistakes) {
  auto text = std::string(kPerFilter);
  auto with = [&](std::string_view from, std::string_view to) {
    auto t = text;
    t.replace(t.find(from), from.size(), to);
    return load(t);
  };
  EXPECT_TRUE(has_error(with("fault: { disabled: true }", "falut: { disabled: true }"),
                        "test.yaml:13:30: listeners[0].routes[0].per_filter_config.falut: listener 'ingress' has "
                        "no 'falut' filter; did you mean 'fault'?"));
  EXPECT_TRUE(has_error(with("fault: { disabled: true }", "fault: { disabled: true, abort: {} }"),
                        "per_filter_config.fault: 'disabled' takes no other settings beside it"));
  EXPECT_TRUE(has_error(with("fault: { disabled: true }", "fault: off"), "expected a mapping"));
  EXPECT_TRUE(has_error(with("fault: { disabled: true }", "fault: { disabled: maybe }"),
                        "per_filter_config.fault.disabled: expected true or false"));
}

TEST(ConfigLoader, ReportsUnknownKeyWithSuggestionAndPosition) {
  auto r = load("listners: []\n");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].to_string(), "test.yaml:1:1: unknown key 'listners'; did you mean 'listeners'?");
}

TEST(ConfigLoader, ReportsEveryErrorNotJustTheFirst) {
  auto r = load(R"(listeners:
  - name: ingress
    address: 127.0.0.1:99999
    routes:
      - match: { prefx: / }
        cluster: ap
        timeout: 5 seconds
clusters:
  - name: app
    endpoints: [127.0.0.1:8080]
)");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(messages(r), (std::vector<std::string>{
                             "test.yaml:3:14: listeners[0].address: invalid address '127.0.0.1:99999': port must "
                             "be a number from 1 to 65535",
                             "test.yaml:5:18: listeners[0].routes[0].match: unknown key 'prefx'; did you mean "
                             "'prefix'?",
                             "test.yaml:7:18: listeners[0].routes[0].timeout: invalid duration '5 seconds' (use "
                             "e.g. 250ms, 15s, 1m)",
                             "test.yaml:5:9: route 'ingress/0' names unknown cluster 'ap'; did you mean 'app'?",
                         }));
}

TEST(ConfigLoader, ReportsWrongTypes) {
  auto r = load(R"(
workers: many
listeners: { name: x }
clusters:
  - name: app
    endpoints: 127.0.0.1:80
    connection_pool: [1]
)");
  EXPECT_TRUE(has_error(r, "test.yaml:2:10: workers: expected a whole number, got 'many'"));
  EXPECT_TRUE(has_error(r, "test.yaml:3:12: listeners: expected a list"));
  EXPECT_TRUE(has_error(r, "test.yaml:6:16: clusters[0].endpoints: expected a list"));
  EXPECT_TRUE(has_error(r, "clusters[0].connection_pool: expected a mapping"));
}

TEST(ConfigLoader, ReportsMissingRequiredFieldsAtTheEnclosingMapping) {
  auto r = load(R"(
listeners:
  - address: 127.0.0.1:1
clusters:
  - name: app
)");
  EXPECT_TRUE(has_error(r, "test.yaml:3:5: listeners[0]: missing required key 'name'"));
  EXPECT_TRUE(has_error(r, "test.yaml:3:5: listeners[0]: missing required key 'routes'"));
  EXPECT_TRUE(has_error(r, "test.yaml:5:5: clusters[0]: missing required key 'endpoints'"));
}

TEST(ConfigLoader, ReportsDuplicateNamesAndAddresses) {
  auto r = load(R"(
listeners:
  - name: a
    address: 127.0.0.1:1000
    routes: [{ name: r, cluster: c }, { name: r, cluster: c }]
  - name: a
    address: 127.0.0.1:1000
    routes: [{ cluster: c }]
clusters:
  - { name: c, endpoints: [127.0.0.1:1] }
  - { name: c, endpoints: [127.0.0.1:2] }
)");
  EXPECT_TRUE(has_error(r, "duplicate route name 'r' in listener 'a'"));
  EXPECT_TRUE(has_error(r, "test.yaml:6:11: listeners[1].name: duplicate listener name 'a'"));
  EXPECT_TRUE(has_error(r, "address 127.0.0.1:1000 is already used by listener 'a'"));
  EXPECT_TRUE(has_error(r, "test.yaml:11:13: clusters[1].name: duplicate cluster name 'c'"));
}

TEST(ConfigLoader, ReportsBadEnumsRegexesAndRouteActions) {
  auto r = load(R"(
log_level: loud
access_log: { format: xml }
listeners:
  - name: a
    address: 127.0.0.1:1000
    direction: sideways
    routes:
      - match: { regex: "(" }
        direct_response: { status: 700 }
      - match: { prefix: /, path: /x }
      - cluster: c
        direct_response: { status: 200 }
clusters: [{ name: c, endpoints: [127.0.0.1:1] }]
)");
  EXPECT_TRUE(has_error(r, "log_level: invalid value 'loud' (one of: trace, debug, info, warn, error, critical, off)"));
  EXPECT_TRUE(has_error(r, "access_log.format: invalid value 'xml' (one of: json, text)"));
  EXPECT_TRUE(has_error(r, "listeners[0].direction: invalid value 'sideways' (one of: inbound, outbound)"));
  EXPECT_TRUE(has_error(r, "listeners[0].routes[0].match.regex: invalid regex '('"));
  EXPECT_TRUE(has_error(r, "listeners[0].routes[0].direct_response.status: must be from 100 to 599"));
  EXPECT_TRUE(has_error(r, "listeners[0].routes[1].match: use only one of 'prefix', 'path' or 'regex'"));
  EXPECT_TRUE(has_error(r, "listeners[0].routes[1]: needs exactly one of 'cluster', 'weighted_clusters' or 'direct_response'"));
  EXPECT_TRUE(has_error(r, "listeners[0].routes[2]: needs exactly one of 'cluster', 'weighted_clusters' or 'direct_response'"));
}

TEST(ConfigLoader, ReadsHttp2AndGrpcSettings) {
  auto r = load(R"(
listeners:
  - name: a
    address: 127.0.0.1:1000
    protocol: http2
    http2: { max_concurrent_streams: 50, initial_stream_window_size: 1048576, max_header_list_size: 32768 }
    routes:
      - cluster: c
        retry: { retry_on: [unavailable, deadline-exceeded, cancelled, internal, resource-exhausted], grpc_response_buffer_limit: 1024 }
clusters:
  - name: c
    protocol: http2
    endpoints: [127.0.0.1:1]
    http2: { max_concurrent_streams: 7, ping_interval: 30s, ping_timeout: 2s }
)");
  ASSERT_TRUE(r.ok()) << messages(r).front();
  const auto& l = r.config->listeners[0];
  EXPECT_EQ(l.protocol, Protocol::http2);
  EXPECT_EQ(l.http2.max_concurrent_streams, 50u);
  EXPECT_EQ(l.http2.initial_stream_window_size, 1048576u);
  EXPECT_EQ(l.http2.max_header_list_size, 32768u);
  EXPECT_EQ(l.routes[0].retry->retry_on, kRetryOnGrpc);
  EXPECT_EQ(l.routes[0].retry->grpc_response_buffer_limit, 1024u);
  const auto& c = r.config->clusters[0];
  EXPECT_EQ(c.protocol, Protocol::http2);
  EXPECT_EQ(c.http2.max_concurrent_streams, 7u);
  EXPECT_EQ(c.http2.ping_interval, 30s);
  EXPECT_EQ(c.http2.ping_timeout, 2s);
}

TEST(ConfigLoader, ReportsBadHttp2Settings) {
  auto r = load(R"(
listeners:
  - name: a
    address: 127.0.0.1:1000
    protocol: spdy
    http2: { max_concurrent_streams: 0, ping_interval: 1s }
    routes: [{ cluster: c }]
clusters:
  - name: c
    protocol: http2
    endpoints: [127.0.0.1:1]
    http2: { initial_stream_window_size: 100, ping_timeout: 0s }
    health_check: { path: /healthz }
)");
  EXPECT_TRUE(has_error(r, "listeners[0].protocol: invalid value 'spdy' (one of: auto, http1, http2, tcp)"));
  EXPECT_TRUE(has_error(r, "listeners[0].http2.max_concurrent_streams: must be from 1 to"));
  EXPECT_TRUE(has_error(r, "listeners[0].http2: unknown key 'ping_interval'"));
  EXPECT_TRUE(has_error(r, "clusters[0].http2.initial_stream_window_size: must be from 65535 to"));
  EXPECT_TRUE(has_error(r, "clusters[0].http2.ping_timeout: must be greater than 0"));
  EXPECT_TRUE(has_error(r, "clusters[0].health_check: health checks speak HTTP/1.1"));
}

TEST(ConfigLoader, ReportsYamlSyntaxErrorsWithPosition) {
  auto r = load("listeners:\n  - name: [unclosed\n");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].file, "test.yaml");
  EXPECT_GT(r.errors[0].mark.line, 0);
}

TEST(ConfigLoader, ReportsAnUnreadableFile) {
  auto r = load_file("/nonexistent/outrigger.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].to_string(), "/nonexistent/outrigger.yaml:0:0: cannot read file: No such file or directory");
}

TEST(ConfigLoader, ShippedConfigsAreValid) {
  const auto root = std::filesystem::path(__FILE__).parent_path() / "../../../config";
  int seen = 0;
  for (const auto& dir : {root, root / "examples"}) {
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (entry.path().extension() != ".yaml") continue;
      ++seen;
      auto r = load_file(entry.path().string());
      EXPECT_TRUE(r.ok()) << entry.path() << ": " << ::testing::PrintToString(messages(r));
    }
  }
  EXPECT_GE(seen, 2);
}

TEST(ConfigLoader, ReadsLoadBalancingAndWeightedClusters) {
  auto r = load(R"(
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - weighted_clusters: [{ cluster: v1, weight: 90 }, { cluster: v2, weight: 10 }]
clusters:
  - name: v1
    lb_policy: least_request
    endpoints: [127.0.0.1:1, { address: 127.0.0.1:2, weight: 3 }]
  - { name: v2, lb_policy: random, endpoints: [127.0.0.1:3] }
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  const auto& c = *r.config;
  ASSERT_EQ(c.listeners[0].routes[0].weighted_clusters.size(), 2u);
  EXPECT_EQ(c.listeners[0].routes[0].weighted_clusters[1].cluster, "v2");
  EXPECT_EQ(c.listeners[0].routes[0].weighted_clusters[1].weight, 10u);
  EXPECT_EQ(c.clusters[0].lb_policy, LbPolicy::least_request);
  EXPECT_EQ(c.clusters[0].endpoints[0].weight, 1u);
  EXPECT_EQ(c.clusters[0].endpoints[1].weight, 3u);
  EXPECT_EQ(c.clusters[1].lb_policy, LbPolicy::random);
}

TEST(ConfigLoader, ReportsBadWeightsPoliciesAndUnknownWeightedClusters) {
  auto r = load(R"(
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - weighted_clusters: [{ cluster: v1, weight: 0 }, { cluster: v3, weight: 1 }, { cluster: v1 }]
clusters:
  - { name: v1, lb_policy: fastest, endpoints: [{ address: 127.0.0.1:2, weight: -1 }] }
)");
  EXPECT_TRUE(has_error(r, "weighted_clusters[0].weight: must be from 1 to 1000000"));
  EXPECT_TRUE(has_error(r, "weighted_clusters[2]: missing required key 'weight'"));
  EXPECT_TRUE(has_error(r, "route 'a/0' names unknown cluster 'v3'; did you mean 'v1'?"));
  EXPECT_TRUE(has_error(r, "clusters[0].lb_policy: invalid value 'fastest' (one of: round_robin, least_request, random)"));
  EXPECT_TRUE(has_error(r, "clusters[0].endpoints[0].weight: expected a whole number, got '-1'"));
}

TEST(ConfigLoader, ReadsRetryPoliciesAndBudgets) {
  auto r = load(R"(
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - cluster: c
        retry:
          retry_on: [5xx, gateway-error, reset, connect-failure, retriable-status-codes]
          retriable_status_codes: [409]
          num_retries: 2
          per_try_timeout: 1s
          backoff: { base: 25ms, max: 250ms }
          retriable_methods: [get, put]
        retry_buffer_limit: 1024
clusters:
  - { name: c, endpoints: [127.0.0.1:1], retry_budget: { ratio: 0.25, min_retries_per_second: 5 },
      circuit_breakers: { max_retries: 7 } }
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  const auto& route = r.config->listeners[0].routes[0];
  ASSERT_TRUE(route.retry);
  EXPECT_EQ(route.retry->retry_on, 31u);
  EXPECT_EQ(route.retry->retriable_status_codes, std::vector<int>{409});
  EXPECT_EQ(route.retry->num_retries, 2u);
  EXPECT_EQ(route.retry->per_try_timeout, 1s);
  EXPECT_EQ(route.retry->backoff_max, 250ms);
  EXPECT_EQ(route.retry->retriable_methods, (std::vector<std::string>{"GET", "PUT"}));
  EXPECT_EQ(route.retry_buffer_limit, 1024u);
  EXPECT_DOUBLE_EQ(r.config->clusters[0].retry_budget.ratio, 0.25);
  EXPECT_EQ(r.config->clusters[0].circuit_breakers.max_retries, 7u);
}

TEST(ConfigLoader, ReportsBadRetryPolicies) {
  auto r = load(R"(
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - cluster: c
        retry: { retry_on: [5xx, sometimes], retriable_status_codes: [700], backoff: { base: 1s, max: 10ms } }
      - cluster: c
        retry: { num_retries: 2 }
clusters:
  - { name: c, endpoints: [127.0.0.1:1], retry_budget: { ratio: lots } }
)");
  EXPECT_TRUE(has_error(r, "retry.retry_on: invalid value 'sometimes'"));
  EXPECT_TRUE(has_error(r, "retry.retriable_status_codes: invalid status code '700'"));
  EXPECT_TRUE(has_error(r, "retry.backoff: max must not be below base"));
  EXPECT_TRUE(has_error(r, "routes[1].retry: missing required key 'retry_on'"));
  EXPECT_TRUE(has_error(r, "retry_budget.ratio: expected a number, got 'lots'"));
}

TEST(ConfigLoader, ReadsBreakerAndFallback) {
  auto r = load(R"(
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - name: to-cluster
        match: { prefix: /a }
        cluster: c
        fallback: { cluster: spare }
      - name: to-static
        cluster: c
        fallback: { status: 200, body: "[]", headers: [{ name: content-type, value: application/json }] }
clusters:
  - name: c
    endpoints: [127.0.0.1:1]
    breaker: { failure_rate: 0.25, minimum_requests: 5, window: 30s, slow_call_duration: 2s,
               open_duration: 10s, half_open_requests: 3 }
  - { name: spare, endpoints: [127.0.0.1:2] }
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  const auto& b = r.config->clusters[0].breaker;
  ASSERT_TRUE(b);
  EXPECT_DOUBLE_EQ(b->failure_rate, 0.25);
  EXPECT_EQ(b->minimum_requests, 5u);
  EXPECT_EQ(b->window, 30s);
  EXPECT_EQ(b->slow_call_duration, 2s);
  EXPECT_EQ(b->open_duration, 10s);
  EXPECT_EQ(b->half_open_requests, 3u);
  EXPECT_FALSE(r.config->clusters[1].breaker);
  const auto& routes = r.config->listeners[0].routes;
  ASSERT_TRUE(routes[0].fallback);
  EXPECT_EQ(routes[0].fallback->cluster, "spare");
  ASSERT_TRUE(routes[1].fallback && routes[1].fallback->response);
  EXPECT_EQ(routes[1].fallback->response->status, 200);
  EXPECT_EQ(routes[1].fallback->response->body, "[]");
}

TEST(ConfigLoader, ReportsBadBreakersAndFallbacks) {
  auto r = load(R"(
listeners:
  - name: a
    address: 127.0.0.1:1
    routes:
      - { match: { prefix: /a }, cluster: c, fallback: { cluster: nowhere } }
      - { cluster: c, fallback: { cluster: c, status: 200 } }
clusters:
  - name: c
    endpoints: [127.0.0.1:1]
    breaker: { failure_rate: 1.5, window: 2m, half_open_requests: 0, open_for: 1s }
)");
  EXPECT_TRUE(has_error(r, "breaker.failure_rate: must be a number from 0 to 1"));
  EXPECT_TRUE(has_error(r, "breaker.window: must be from 1s to 60s"));
  EXPECT_TRUE(has_error(r, "breaker.half_open_requests"));
  EXPECT_TRUE(has_error(r, "breaker: unknown key 'open_for'"));
  EXPECT_TRUE(has_error(r, "unknown cluster 'nowhere'"));
  EXPECT_TRUE(has_error(r, "fallback: unknown key 'status'"));
}

TEST(ConfigLoader, AFallbackClusterMustBeOneName) {
  for (const char* fallback : {"{ cluster: [a] }", "{ cluster: { name: a } }"}) {
    auto r = load(std::string(R"(
listeners:
  - name: l
    address: 127.0.0.1:1
    routes: [{ cluster: a, fallback: )") + fallback + R"( }]
clusters: [{ name: a, endpoints: [127.0.0.1:1] }]
)");
    EXPECT_FALSE(r.ok()) << fallback;
    EXPECT_TRUE(has_error(r, "fallback.cluster: expected a single value")) << fallback;
  }
}

TEST(ClosestMatch, SuggestsOnlyNearMisses) {
  EXPECT_EQ(closest_match("timout", {"timeout", "cluster"}), "timeout");
  EXPECT_EQ(closest_match("zzz", {"timeout", "cluster"}), "");
}

}  // namespace
}  // namespace outrigger::config

namespace outrigger::config {
namespace {

TEST(ConfigLoader, ReadsTracing) {
  auto r = load_string(R"(
tracing:
  service_name: reviews
  collector_cluster: zipkin
  sample_rate: 0.25
  propagation: [w3c, b3]
  max_queue_spans: 100
  flush_interval: 250ms
  max_batch_spans: 10
listeners:
  - { name: a, address: 127.0.0.1:1, filters: [{ type: tracing }], routes: [{ cluster: zipkin }] }
clusters:
  - { name: zipkin, endpoints: [127.0.0.1:9411] }
)", "t.yaml");
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  const auto& t = *r.config->tracing;
  EXPECT_EQ(t.service_name, "reviews");
  EXPECT_DOUBLE_EQ(t.sample_rate, 0.25);
  EXPECT_EQ(t.propagation, (std::vector<Propagation>{Propagation::w3c, Propagation::b3}));
  EXPECT_EQ(t.max_queue_spans, 100u);
  EXPECT_EQ(t.flush_interval, std::chrono::milliseconds(250));
  EXPECT_EQ(t.collector_path, "/api/v2/spans");
}

TEST(ConfigLoader, ReportsBadTracing) {
  auto r = load_string(R"(
tracing: { service_name: a, collector_cluster: zipkn, sample_rate: 2, propagation: [jaeger] }
listeners:
  - { name: a, address: 127.0.0.1:1, filters: [{ type: tracing, rate: 1 }], routes: [{ cluster: zipkin }] }
clusters:
  - { name: zipkin, endpoints: [127.0.0.1:9411] }
)", "t.yaml");
  std::string all;
  for (const auto& e : r.errors) all += e.to_string() + "\n";
  EXPECT_NE(all.find("tracing.collector_cluster: unknown cluster 'zipkn'; did you mean 'zipkin'?"), std::string::npos) << all;
  EXPECT_NE(all.find("tracing.sample_rate: must be a number from 0 to 1"), std::string::npos) << all;
  EXPECT_NE(all.find("invalid value 'jaeger'"), std::string::npos) << all;

  auto missing = load_string(R"(
listeners:
  - { name: a, address: 127.0.0.1:1, filters: [{ type: tracing }], routes: [{ direct_response: { status: 200 } }] }
)", "t.yaml");
  ASSERT_FALSE(missing.errors.empty());
  EXPECT_NE(missing.errors[0].to_string().find("needs a top-level 'tracing' section"), std::string::npos);
}

}  // namespace
}  // namespace outrigger::config

namespace outrigger::config {
namespace {

constexpr std::string_view kBeyondHttp = R"(
listeners:
  - name: out
    address: 127.0.0.1:15001
    direction: outbound
    original_destination: true
    passthrough: deny
    detect_timeout: 250ms
    opaque_ports: [3306, "5000-5002"]
    tunnel_idle_timeout: 10m
    sni: [{ names: [A.test, "*.b.test"], cluster: app }]
  - name: db
    address: 127.0.0.1:15002
    protocol: tcp
    cluster: app
  - name: in
    address: 127.0.0.1:15006
    original_destination: true
    application_address: 127.0.0.2
    routes: [{ cluster: app, upgrade: [websocket, spdy/3] }]
socket_mark: 1337
clusters:
  - name: app
    endpoints: [127.0.0.1:8080]
)";

TEST(ConfigLoader, ReadsWhatListenersDoBeyondHttp) {
  auto r = load_string(kBeyondHttp, "t.yaml");
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  const auto& c = *r.config;
  EXPECT_EQ(c.socket_mark, 1337u);
  const auto& out = c.listeners[0];
  EXPECT_TRUE(out.original_destination);
  EXPECT_TRUE(out.detects());
  EXPECT_EQ(out.passthrough, Passthrough::deny);
  EXPECT_EQ(out.detect_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(out.opaque_ports, (std::vector<std::uint16_t>{3306, 5000, 5001, 5002}));
  EXPECT_EQ(out.tunnel_idle_timeout, std::chrono::minutes(10));
  ASSERT_EQ(out.sni.size(), 1u);
  EXPECT_EQ(out.sni[0].names, (std::vector<std::string>{"a.test", "*.b.test"}));
  EXPECT_TRUE(out.routes.empty());  // an original-destination listener needs none
  const auto& db = c.listeners[1];
  EXPECT_EQ(db.protocol, Protocol::tcp);
  EXPECT_EQ(db.cluster, "app");
  EXPECT_EQ(db.opaque_ports, kDefaultOpaquePorts);
  EXPECT_EQ(db.detect_timeout, std::chrono::milliseconds(100));
  const auto& in = c.listeners[2];
  EXPECT_EQ(in.application_address.host, "127.0.0.2");
  EXPECT_EQ(in.application_address.port, 0);
  EXPECT_EQ(in.routes[0].upgrade, (std::vector<std::string>{"websocket", "spdy/3"}));
  EXPECT_EQ(c.listeners[0].passthrough, Passthrough::deny);
}

TEST(ConfigLoader, RoutesAllowWebSocketUpgradesByDefault) {
  auto r = load_string(kMinimal, "t.yaml");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->listeners[0].routes[0].upgrade, std::vector<std::string>{"websocket"});
  EXPECT_FALSE(r.config->listeners[0].detects());
}

TEST(ConfigLoader, ExplainsWhatBeyondHttpCannotBe) {
  auto check = [](std::string_view yaml, std::string_view part) {
    auto r = load_string(yaml, "t.yaml");
    EXPECT_TRUE(has_error(r, part)) << yaml << "\n" << ::testing::PrintToString(messages(r));
  };
  check(R"(
listeners: [{ name: t, address: 127.0.0.1:1, protocol: tcp }]
)", "t.yaml:2:13: listeners[0]: a 'protocol: tcp' listener needs a 'cluster'");
  check(R"(
listeners: [{ name: t, address: 127.0.0.1:1, protocol: tcp, cluster: nope }]
)", "listener 't' names unknown cluster 'nope'");
  check(R"(
listeners: [{ name: t, address: 127.0.0.1:1, protocol: http1, cluster: a, routes: [{ cluster: a }] }]
clusters: [{ name: a, endpoints: [127.0.0.1:2] }]
)", "need 'protocol: auto' (detection) or 'tcp'");
  check(R"(
listeners: [{ name: t, address: 127.0.0.1:1, protocol: tcp, cluster: a, filters: [{ type: jwt_authn }] }]
clusters: [{ name: a, endpoints: [127.0.0.1:2] }]
)", "takes only 'rbac' filters, not 'jwt_authn'");
  check(R"(
listeners: [{ name: t, address: 127.0.0.1:1, cluster: a, opaque_ports: [0, "9-3", x], routes: [{ cluster: a }] }]
clusters: [{ name: a, endpoints: [127.0.0.1:2] }]
)", "listeners[0].opaque_ports[1]: expected a port (1-65535) or a range such as 5000-5010, got '9-3'");
  check(R"(
listeners: [{ name: t, address: 127.0.0.1:1, cluster: a, detect_timeout: 0s, routes: [{ cluster: a }] }]
clusters: [{ name: a, endpoints: [127.0.0.1:2] }]
)", "detect_timeout: must be from 1ms to 60s");
  check(R"(
listeners: [{ name: t, address: 127.0.0.1:1, sni: [{ names: [a.test], cluster: nope }], routes: [{ cluster: a }] }]
clusters: [{ name: a, endpoints: [127.0.0.1:2] }]
)", "listener 't' sni route names unknown cluster 'nope'");
  check(R"(
listeners: [{ name: t, address: 127.0.0.1:1, routes: [{ cluster: a, upgrade: [h2c] }] }]
clusters: [{ name: a, endpoints: [127.0.0.1:2] }]
)", "'h2c' is not an upgrade a proxy forwards");
  check(R"(
listeners: [{ name: t, address: 127.0.0.1:1, original_destination: true, passthrough: maybe }]
)", "passthrough");
}

TEST(ConfigLoader, ReadsTheOverloadLimitsWithDefaultsThatDoNotTrigger) {
  auto r = load(kMinimal);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->overload.max_downstream_connections, 50000u);
  EXPECT_EQ(r.config->overload.max_requests_per_worker, 10000u);
  EXPECT_EQ(r.config->listeners[0].max_connections, 0u);

  auto set = load(R"(
overload: { max_downstream_connections: 200, max_requests_per_worker: 0 }
listeners: [{ name: t, address: 127.0.0.1:1, max_connections: 50, routes: [{ cluster: a }] }]
clusters: [{ name: a, endpoints: [127.0.0.1:2] }]
)");
  ASSERT_TRUE(set.ok()) << ::testing::PrintToString(messages(set));
  EXPECT_EQ(set.config->overload.max_downstream_connections, 200u);
  EXPECT_EQ(set.config->overload.max_requests_per_worker, 0u);  // no limit
  EXPECT_EQ(set.config->listeners[0].max_connections, 50u);
}

TEST(ConfigLoader, ReportsBadOverloadKeysWithTheirPosition) {
  auto r = load(R"(overload:
  max_request_per_worker: 10
  max_downstream_connections: -1
listeners: [{ name: t, address: 127.0.0.1:1, max_connections: lots, routes: [{ cluster: a }] }]
clusters: [{ name: a, endpoints: [127.0.0.1:2] }]
)");
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(has_error(r, "test.yaml:2:3: overload: unknown key 'max_request_per_worker'; did you mean "
                           "'max_requests_per_worker'?"))
      << ::testing::PrintToString(messages(r));
  EXPECT_TRUE(has_error(r, "test.yaml:3:31: overload.max_downstream_connections: expected a whole number, got '-1'"));
  EXPECT_TRUE(has_error(r, "listeners[0].max_connections: expected a whole number, got 'lots'"));
}

TEST(ConfigLoader, ReadsTheXdsBlockAndLetsRoutesNameClustersItWillSend) {
  auto r = load(R"(
xds:
  cluster: cp
  node: { id: sidecar-1, cluster: shop, metadata: { team: payments, tier: "2" } }
  resources: [clusters]
  initial_fetch_timeout: 5s
listeners:
  - name: ingress
    address: 127.0.0.1:10000
    routes: [{ cluster: from-the-control-plane }]
clusters:
  - { name: cp, protocol: http2, endpoints: [127.0.0.1:15010] }
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  const auto& x = r.config->xds;
  ASSERT_TRUE(x);
  EXPECT_EQ(x->cluster, "cp");
  EXPECT_EQ(x->node_id, "sidecar-1");
  EXPECT_EQ(x->node_cluster, "shop");
  EXPECT_EQ(x->node_metadata, (std::vector<std::pair<std::string, std::string>>{{"team", "payments"}, {"tier", "2"}}));
  EXPECT_TRUE(x->clusters);
  EXPECT_EQ(x->initial_fetch_timeout, 5s);
  // Without an xds block, the same route is an error.
  EXPECT_TRUE(has_error(load(R"(
listeners:
  - name: ingress
    address: 127.0.0.1:10000
    routes: [{ cluster: from-the-control-plane }]
)"), "names unknown cluster 'from-the-control-plane'"));
}

TEST(ConfigLoader, ReportsWhatTheXdsBlockCannotBe) {
  auto r = load(R"(
xds:
  cluster: cp
  resources: [clusters, listeners, widgets]
listeners:
  - name: ingress
    address: 127.0.0.1:10000
    routes: [{ cluster: cp }]
clusters:
  - { name: cp, endpoints: [127.0.0.1:15010] }
)");
  EXPECT_TRUE(has_error(r, "xds: missing required key 'node'")) << ::testing::PrintToString(messages(r));
  EXPECT_TRUE(has_error(r, "xds.resources: 'listeners' is not supported yet")) << ::testing::PrintToString(messages(r));
  EXPECT_TRUE(has_error(r, "xds.resources: unknown resource type 'widgets'")) << ::testing::PrintToString(messages(r));
  EXPECT_TRUE(has_error(r, "xds.cluster: cluster 'cp' must have 'protocol: http2'")) << ::testing::PrintToString(messages(r));
  EXPECT_TRUE(has_error(load(R"(
xds: { cluster: nowhere, node: { id: a } }
)"), "xds.cluster names unknown cluster 'nowhere'"));
  EXPECT_TRUE(has_error(load(R"(
xds: { cluster: cp, node: { cluster: x } }
clusters:
  - { name: cp, protocol: http2, endpoints: [127.0.0.1:15010] }
)"), "xds.node: missing required key 'id'"));
}

}  // namespace
}  // namespace outrigger::config
