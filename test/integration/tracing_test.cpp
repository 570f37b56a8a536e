// Zipkin tracing as the upstream and a collector see it: the context an
// upstream receives, the spans the collector gets (checked against the
// official Zipkin v2 API), sampling decisions, retries as sibling CLIENT
// spans, and a failing collector that costs spans, never requests.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <filesystem>
#include <fstream>
#include <map>

#include "support/net.hpp"
#include "support/zipkin_schema.hpp"

namespace {

using namespace testing_support;
namespace json = boost::json;

// A Zipkin collector: keeps every span POSTed to /api/v2/spans.
struct Collector {
  std::atomic<int> status{202};
  std::mutex mutex;
  std::vector<json::object> spans;
  std::vector<std::string> problems;  // schema violations
  FakeUpstream server{[this](FakeUpstream::Exchange& ex) {
    if (ex.request.method_string() == "POST" && ex.request.target() == "/api/v2/spans" &&
        ex.request["content-type"] == "application/json" && status == 202) {
      const auto body = json::parse(ex.request.body());
      auto found = validate_zipkin(body);
      std::lock_guard lock(mutex);
      problems.insert(problems.end(), found.begin(), found.end());
      for (const auto& s : body.as_array()) spans.push_back(s.as_object());
    }
    FakeUpstream::reply(ex, status, "");
  }};
  std::vector<json::object> snapshot() {
    std::lock_guard lock(mutex);
    return spans;
  }
  // The spans of one trace, once at least `n` have arrived.
  std::vector<json::object> trace(const std::string& trace_id, std::size_t n) {
    std::vector<json::object> out;
    eventually([&] {
      out.clear();
      for (auto& s : snapshot())
        if (s.at("traceId").as_string() == trace_id) out.push_back(s);
      return out.size() >= n;
    });
    return out;
  }
};

std::string config(std::uint16_t app, std::uint16_t collector, const std::string& tracing_extra = "",
                   const std::string& route_extra = "", const std::string& top_extra = "") {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 2
log_level: off
{TOP}
tracing:
  service_name: reviews
  collector_cluster: zipkin
  flush_interval: 20ms
{TRACING}
listeners:
  - name: ingress
    address: 127.0.0.1:0
    filters: [{ type: tracing }]
    routes:
      - name: r
        cluster: app
{ROUTE}
clusters:
  - { name: app, endpoints: [127.0.0.1:{APP}] }
  - { name: zipkin, endpoints: [127.0.0.1:{ZIPKIN}] }
)",
              {{"APP", std::to_string(app)},
               {"ZIPKIN", std::to_string(collector)},
               {"TRACING", tracing_extra},
               {"ROUTE", route_extra},
               {"TOP", top_extra}});
}

const json::object* find_kind(const std::vector<json::object>& spans, std::string_view kind) {
  for (const auto& s : spans)
    if (s.at("kind").as_string() == kind) return &s;
  return nullptr;
}

std::string tag(const json::object& span, const char* name) {
  const auto& tags = span.at("tags").as_object();
  return tags.contains(name) ? std::string(tags.at(name).as_string()) : std::string();
}

TEST(Tracing, StartsATraceAndReportsServerAndClientSpans) {
  FakeUpstream app;
  Collector zipkin;
  Proxy proxy(config(app.port(), zipkin.server.port()));
  auto res = http_get(proxy.port(), "/reviews/1");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200);

  // The upstream got a fresh 128-bit B3 context (the first listed format).
  const auto up = app.last_request();
  const std::string trace_id(up["x-b3-traceid"]);
  ASSERT_EQ(trace_id.size(), 32u);
  EXPECT_EQ(up["x-b3-sampled"], "1");
  ASSERT_EQ(up["x-b3-spanid"].size(), 16u);
  ASSERT_EQ(up["x-b3-parentspanid"].size(), 16u);

  const auto spans = zipkin.trace(trace_id, 2);
  ASSERT_EQ(spans.size(), 2u);
  const auto* server = find_kind(spans, "SERVER");
  const auto* client = find_kind(spans, "CLIENT");
  ASSERT_TRUE(server && client);
  EXPECT_FALSE(server->contains("parentId"));  // a root span
  EXPECT_EQ(client->at("parentId").as_string(), server->at("id").as_string());
  EXPECT_EQ(client->at("id").as_string(), up["x-b3-spanid"]);
  EXPECT_EQ(server->at("id").as_string(), up["x-b3-parentspanid"]);
  EXPECT_EQ(server->at("localEndpoint").at("serviceName").as_string(), "reviews");
  EXPECT_EQ(server->at("name").as_string(), "get");
  EXPECT_EQ(tag(*server, "http.method"), "GET");
  EXPECT_EQ(tag(*server, "http.path"), "/reviews/1");
  EXPECT_EQ(tag(*server, "http.status_code"), "200");
  EXPECT_EQ(tag(*server, "outrigger.route"), "r");
  EXPECT_EQ(tag(*client, "outrigger.cluster"), "app");
  EXPECT_EQ(tag(*client, "outrigger.attempt"), "1");
  EXPECT_EQ(client->at("remoteEndpoint").at("ipv4").as_string(), "127.0.0.1");
  EXPECT_EQ(client->at("remoteEndpoint").at("port").to_number<int>(), app.port());
  EXPECT_EQ(server->at("remoteEndpoint").at("ipv4").as_string(), "127.0.0.1");
  EXPECT_GE(server->at("duration").to_number<std::int64_t>(), client->at("duration").to_number<std::int64_t>());
  EXPECT_GT(server->at("timestamp").to_number<std::int64_t>(), 1'700'000'000'000'000);
  std::lock_guard lock(zipkin.mutex);
  EXPECT_TRUE(zipkin.problems.empty()) << ::testing::PrintToString(zipkin.problems);
}

TEST(Tracing, ContinuesAW3cTraceInW3c) {
  FakeUpstream app;
  Collector zipkin;
  Proxy proxy(config(app.port(), zipkin.server.port()));
  const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736", parent = "00f067aa0ba902b7";
  auto res = http_get(proxy.port(), "/x",
                      {{"traceparent", "00-" + trace + "-" + parent + "-01"}, {"tracestate", "vendor=opaque"}});
  ASSERT_TRUE(res);
  const auto up = app.last_request();
  const std::string tp(up["traceparent"]);
  ASSERT_EQ(tp.size(), 55u);
  EXPECT_EQ(tp.substr(0, 36), "00-" + trace + "-");
  EXPECT_EQ(tp.substr(52), "-01");
  EXPECT_EQ(up["tracestate"], "vendor=opaque");
  EXPECT_EQ(up["x-b3-traceid"], "");  // written in the format it arrived in only

  const auto spans = zipkin.trace(trace, 2);
  const auto* server = find_kind(spans, "SERVER");
  const auto* client = find_kind(spans, "CLIENT");
  ASSERT_TRUE(server && client);
  EXPECT_EQ(server->at("parentId").as_string(), parent);
  EXPECT_EQ(tp.substr(36, 16), client->at("id").as_string());
}

TEST(Tracing, ContinuesA64BitB3SingleTraceAndItsDebugFlag) {
  FakeUpstream app;
  Collector zipkin;
  Proxy proxy(config(app.port(), zipkin.server.port(), "  sample_rate: 0"));
  auto res = http_get(proxy.port(), "/x", {{"b3", "80f198ee56343ba8-e457b5a2e4d86bd1-d"}});
  ASSERT_TRUE(res);
  const std::string b3(app.last_request()["b3"]);
  EXPECT_EQ(b3.substr(0, 17), "80f198ee56343ba8-");
  EXPECT_EQ(b3.substr(33, 3), "-d-");  // debug, then the parent (our SERVER span)
  const auto spans = zipkin.trace("80f198ee56343ba8", 2);  // debug wins over sample_rate 0
  const auto* server = find_kind(spans, "SERVER");
  ASSERT_TRUE(server);
  EXPECT_EQ(server->at("parentId").as_string(), "e457b5a2e4d86bd1");
  EXPECT_TRUE(server->at("debug").as_bool());
}

TEST(Tracing, HonoursAnIncomingDecisionNotToSample) {
  FakeUpstream app;
  Collector zipkin;
  Proxy proxy(config(app.port(), zipkin.server.port()));
  ASSERT_TRUE(http_get(proxy.port(), "/x",
                       {{"x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"},
                        {"x-b3-spanid", "a2fb4a1d1a96d312"},
                        {"x-b3-sampled", "0"}}));
  EXPECT_EQ(app.last_request()["x-b3-traceid"], "463ac35c9f6413ad48485a3953bb6124");
  EXPECT_EQ(app.last_request()["x-b3-sampled"], "0");  // passed on: the next hop does not sample either
  // A sampled request afterwards: once its spans arrived, the unsampled ones would have too.
  ASSERT_TRUE(http_get(proxy.port(), "/y"));
  const std::string sampled(app.last_request()["x-b3-traceid"]);
  zipkin.trace(sampled, 2);
  for (const auto& s : zipkin.snapshot()) EXPECT_NE(s.at("traceId").as_string(), "463ac35c9f6413ad48485a3953bb6124");
}

TEST(Tracing, RetriesAreSiblingClientSpans) {
  std::atomic<int> n{0};
  FakeUpstream app([&](FakeUpstream::Exchange& ex) {
    if (n++ == 0) return FakeUpstream::reply(ex, 503, "busy");
    FakeUpstream::echo(ex);
  });
  Collector zipkin;
  Proxy proxy(config(app.port(), zipkin.server.port(), "",
                     "        retry: { retry_on: [5xx], num_retries: 1, backoff: { base: 1ms } }"));
  ASSERT_EQ(http_get(proxy.port(), "/x")->result_int(), 200);
  const std::string trace_id(app.last_request()["x-b3-traceid"]);
  const auto spans = zipkin.trace(trace_id, 3);
  ASSERT_EQ(spans.size(), 3u);
  const auto* server = find_kind(spans, "SERVER");
  ASSERT_TRUE(server);
  std::map<std::string, const json::object*> tries;
  for (const auto& s : spans)
    if (s.at("kind").as_string() == "CLIENT") tries[tag(s, "outrigger.attempt")] = &s;
  ASSERT_EQ(tries.size(), 2u);
  EXPECT_EQ(tag(*tries["1"], "http.status_code"), "503");
  EXPECT_EQ(tag(*tries["1"], "error"), "503");
  EXPECT_EQ(tag(*tries["2"], "http.status_code"), "200");
  for (auto& [attempt, s] : tries) EXPECT_EQ(s->at("parentId").as_string(), server->at("id").as_string());
  EXPECT_NE(tries["1"]->at("id").as_string(), tries["2"]->at("id").as_string());
}

TEST(Tracing, TagsTheProxysOwnErrors) {
  Collector zipkin;
  Proxy proxy(config(closed_port(), zipkin.server.port()));
  auto res = http_get(proxy.port(), "/x", {{"x-b3-traceid", "463ac35c9f6413ad"}, {"x-b3-spanid", "a2fb4a1d1a96d312"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 503);
  const auto spans = zipkin.trace("463ac35c9f6413ad", 2);
  const auto* server = find_kind(spans, "SERVER");
  const auto* client = find_kind(spans, "CLIENT");
  ASSERT_TRUE(server && client);
  EXPECT_EQ(tag(*server, "outrigger.error"), "connect_failure");
  EXPECT_EQ(tag(*server, "http.status_code"), "503");
  EXPECT_EQ(tag(*client, "outrigger.error"), "connect_failure");
  EXPECT_FALSE(client->at("tags").as_object().contains("http.status_code"));
}

TEST(Tracing, AFailingCollectorCostsSpansNotRequestsAndReportingResumes) {
  FakeUpstream app;
  Collector zipkin;
  zipkin.status = 503;
  Proxy proxy(config(app.port(), zipkin.server.port()));
  for (int i = 0; i < 20; ++i) ASSERT_EQ(http_get(proxy.port(), "/x")->result_int(), 200);
  ASSERT_TRUE(eventually([&] {
    return !has(metrics(proxy), "outrigger_tracing_spans_dropped_total{reason=\"collector_error\"} 0");
  }));
  zipkin.status = 202;
  ASSERT_TRUE(http_get(proxy.port(), "/again"));
  const std::string trace_id(app.last_request()["x-b3-traceid"]);
  EXPECT_EQ(zipkin.trace(trace_id, 2).size(), 2u);
  // The reporter counts the spans once it has read the collector's 202,
  // which may be just after the collector has them.
  EXPECT_TRUE(eventually([&] { return !has(metrics(proxy), "outrigger_tracing_spans_sent_total 0"); }));
}

TEST(Tracing, AFullQueueDropsSpansAndCountsThem) {
  FakeUpstream app;
  Collector zipkin;
  zipkin.status = 503;
  // One span of room per worker, and a flush only every 10 s.
  Proxy proxy(config(app.port(), zipkin.server.port(), "  max_queue_spans: 2\n  flush_interval: 10s"));
  auto s = Socket::connect(proxy.port());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(s.send(request_text("GET", "/x")));
    ASSERT_TRUE(s.read_response());
  }
  // 20 spans, room for one: 19 dropped; 18 when the reporter's first look
  // (after its default second, before the config reached it) took one.
  EXPECT_TRUE(eventually([&] {
    const auto m = metrics(proxy);
    return has(m, "outrigger_tracing_spans_dropped_total{reason=\"queue_full\"} 19") ||
           has(m, "outrigger_tracing_spans_dropped_total{reason=\"queue_full\"} 18");
  })) << metrics(proxy);
}

TEST(Tracing, TheAccessLogCarriesTraceAndSpanIds) {
  FakeUpstream app;
  Collector zipkin;
  const auto path = std::filesystem::temp_directory_path() / ("outrigger-trace-" + std::to_string(::getpid()) + ".log");
  std::filesystem::remove(path);
  {
    Proxy proxy(config(app.port(), zipkin.server.port(), "", "",
                       "access_log: { path: " + path.string() + ", format: json }"));
    ASSERT_TRUE(http_get(proxy.port(), "/x", {{"x-b3-traceid", "463ac35c9f6413ad"}, {"x-b3-spanid", "a2fb4a1d1a96d312"}}));
    EXPECT_EQ(proxy.drain_and_wait(), 0);
  }
  std::ifstream in(path);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  std::filesystem::remove(path);
  const auto entry = json::parse(line).as_object();
  EXPECT_EQ(entry.at("trace_id").as_string(), "463ac35c9f6413ad");
  const auto spans = zipkin.trace("463ac35c9f6413ad", 2);
  const auto* server = find_kind(spans, "SERVER");
  ASSERT_TRUE(server);
  EXPECT_EQ(entry.at("span_id").as_string(), server->at("id").as_string());
}

}  // namespace

namespace {

TEST(ZipkinSchema, CatchesWhatTheApiForbids) {
  const auto bad = boost::json::parse(R"([{"traceId":"xyz","id":"123","kind":"SIDEWAYS","duration":0,
    "localEndpoint":{"serviceName":"a","ipv4":"not-an-ip"},"tags":{"http.status_code":200}}])");
  const auto problems = testing_support::validate_zipkin(bad);
  const auto text = ::testing::PrintToString(problems);
  EXPECT_NE(text.find("ListOfSpans[0].traceId: shorter than minLength"), std::string::npos) << text;
  EXPECT_NE(text.find("ListOfSpans[0].id: shorter than minLength"), std::string::npos) << text;
  EXPECT_NE(text.find("'SIDEWAYS' is not in the enum"), std::string::npos) << text;
  EXPECT_NE(text.find("duration: below minimum"), std::string::npos) << text;
  EXPECT_NE(text.find("not an ipv4 address"), std::string::npos) << text;
  EXPECT_NE(text.find("tags.http.status_code: expected a string"), std::string::npos) << text;
  const auto good = boost::json::parse(R"([{"traceId":"5af7183fb1d4cf5f","id":"352bff9a74ca9ad2","kind":"SERVER"}])");
  EXPECT_TRUE(testing_support::validate_zipkin(good).empty());
}

}  // namespace
