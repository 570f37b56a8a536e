// Retries as a client and the upstreams see them: what is retried, when, how
// often, and how the budget stops a storm.
#include <gtest/gtest.h>

#include <future>
#include <mutex>

#include "support/net.hpp"

namespace {

using namespace testing_support;
using Clock = std::chrono::steady_clock;

std::string config(const std::vector<std::uint16_t>& ports, const std::string& retry, const std::string& extra_route = "",
                   const std::string& extra_cluster = "") {
  std::string endpoints;
  for (auto p : ports) endpoints += (endpoints.empty() ? "" : ", ") + std::string("127.0.0.1:") + std::to_string(p);
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes:
      - name: r
        cluster: app
        retry: {RETRY}
{ROUTE}
clusters:
  - name: app
    endpoints: [{EPS}]
{CLUSTER}
)",
              {{"RETRY", retry}, {"EPS", endpoints}, {"ROUTE", extra_route}, {"CLUSTER", extra_cluster}});
}

// Answers `status` to every request.
FakeUpstream::Handler always(int status) {
  return [status](FakeUpstream::Exchange& ex) { FakeUpstream::reply(ex, status, std::to_string(status)); };
}

TEST(Retry, RetriesA503OnTheOtherEndpoint) {
  FakeUpstream bad(always(503)), good;
  Proxy proxy(config({bad.port(), good.port()}, "{ retry_on: [5xx], num_retries: 2 }"));
  auto s = Socket::connect(proxy.port());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(s.send(request_text("GET", "/x")));
    auto res = s.read_response();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 200) << i;
  }
  EXPECT_EQ(good.requests(), 20);
  EXPECT_GE(bad.requests(), 5);   // round robin sends about half the first tries there
  EXPECT_LE(bad.requests(), 20);  // and a retry never goes back to the endpoint just tried
  EXPECT_TRUE(good.last_request()["x-outrigger-attempt-count"] == "1" ||
              good.last_request()["x-outrigger-attempt-count"] == "2");
}

TEST(Retry, DoesNotRetryAPostByDefault) {
  FakeUpstream bad(always(503));
  Proxy proxy(config({bad.port()}, "{ retry_on: [5xx], num_retries: 3 }"));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("POST", "/x", {}, "payload")));
  auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 503);
  EXPECT_EQ(bad.requests(), 1);
}

TEST(Retry, ResendsTheBufferedBodyOnRetry) {
  std::atomic<int> n{0};
  FakeUpstream up([&](FakeUpstream::Exchange& ex) {
    if (n++ == 0) return FakeUpstream::reply(ex, 503, "busy");
    FakeUpstream::echo(ex);
  });
  Proxy proxy(config({up.port()}, "{ retry_on: [gateway-error], num_retries: 1, backoff: { base: 1ms } }"));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("PUT", "/x", {}, std::string(1000, 'b'))));
  auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "PUT /x 1000");
  EXPECT_EQ(up.requests(), 2);
}

TEST(Retry, ResendsAChunkedBodyItKeptAsItStreamed) {
  // No Content-Length: the body streams to the first try, and the copy kept
  // of it goes to the second.
  std::atomic<int> n{0};
  FakeUpstream up([&](FakeUpstream::Exchange& ex) {
    if (n++ == 0) return FakeUpstream::reply(ex, 503, "busy");
    FakeUpstream::echo(ex);
  });
  Proxy proxy(config({up.port()}, "{ retry_on: [gateway-error], num_retries: 1, backoff: { base: 1ms } }"));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send("PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
  auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body(), "PUT /x 11");
  EXPECT_EQ(up.requests(), 2);
}

TEST(Retry, DoesNotRetryAChunkedBodyThatOutgrewTheRetryBuffer) {
  FakeUpstream bad(always(503));
  Proxy proxy(config({bad.port()}, "{ retry_on: [5xx], num_retries: 3 }\n        retry_buffer_limit: 4"));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send("PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
  auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 503);
  EXPECT_EQ(bad.requests(), 1);
}

TEST(Retry, DoesNotRetryABodyLargerThanTheRetryBuffer) {
  FakeUpstream bad(always(503));
  Proxy proxy(config({bad.port()}, "{ retry_on: [5xx], num_retries: 3 }\n        retry_buffer_limit: 100"));
  auto s = Socket::connect(proxy.port());
  ASSERT_TRUE(s.send(request_text("PUT", "/x", {}, std::string(1000, 'b'))));
  auto res = s.read_response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 503);
  EXPECT_EQ(bad.requests(), 1);
}

TEST(Retry, RetriesOnlyTheListedStatusCodes) {
  FakeUpstream conflict(always(409));
  Proxy proxy(config({conflict.port()},
                     "{ retry_on: [retriable-status-codes], retriable_status_codes: [409], num_retries: 2, "
                     "backoff: { base: 1ms } }"));
  auto res = http_get(proxy.port(), "/x");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 409);  // the last try's answer
  EXPECT_EQ(conflict.requests(), 3);
}

TEST(Retry, RetriesAResetWhenConfigured) {
  std::atomic<int> n{0};
  FakeUpstream up([&](FakeUpstream::Exchange& ex) {
    if (n++ == 0) {
      ex.socket.send("HTTP/1.1 200 OK\r\nContent-");
      return ex.socket.reset();
    }
    FakeUpstream::echo(ex);
  });
  Proxy proxy(config({up.port()}, "{ retry_on: [reset], num_retries: 1, backoff: { base: 1ms } }"));
  auto res = http_get(proxy.port(), "/x");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200);
  EXPECT_EQ(up.requests(), 2);
}

TEST(Retry, PerTryTimeoutThenSuccess) {
  std::atomic<int> n{0};
  std::atomic<bool> stop{false};
  FakeUpstream up([&](FakeUpstream::Exchange& ex) {
    if (n++ == 0)
      for (int i = 0; i < 200 && !stop; ++i) std::this_thread::sleep_for(10ms);
    FakeUpstream::echo(ex);
  });
  Proxy proxy(config({up.port()}, "{ retry_on: [5xx], num_retries: 1, per_try_timeout: 200ms, backoff: { base: 1ms } }"));
  const auto start = Clock::now();
  auto res = http_get(proxy.port(), "/x");
  const auto took = Clock::now() - start;
  stop = true;
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 200);
  EXPECT_GE(took, 180ms);
  EXPECT_LT(took, 1500ms);
  EXPECT_EQ(up.requests(), 2);
  // The client may see the response a moment before the worker counts it.
  std::string text;
  EXPECT_TRUE(eventually([&] {
    text = metrics(proxy);
    return has(text, "outrigger_upstream_rq_timeout_total{cluster=\"app\"} 1") &&
           has(text, "outrigger_upstream_rq_retry_total{cluster=\"app\",result=\"success\"} 1");
  })) << text;
}

TEST(Retry, TheRouteTimeoutWinsOverRetries) {
  std::atomic<bool> stop{false};
  FakeUpstream up([&](FakeUpstream::Exchange& ex) {
    for (int i = 0; i < 200 && !stop; ++i) std::this_thread::sleep_for(10ms);
    FakeUpstream::echo(ex);
  });
  Proxy proxy(config({up.port()}, "{ retry_on: [5xx], num_retries: 5, per_try_timeout: 300ms, backoff: { base: 1ms } }\n"
                                  "        timeout: 500ms"));
  const auto start = Clock::now();
  auto res = http_get(proxy.port(), "/x");
  const auto took = Clock::now() - start;
  stop = true;
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 504);
  EXPECT_EQ((*res)["x-outrigger-error"], "timeout");
  EXPECT_GE(took, 450ms);
  EXPECT_LT(took, 1500ms);
  EXPECT_LE(up.requests(), 2);
}

TEST(Retry, BacksOffWithinTheConfiguredBounds) {
  std::mutex m;
  std::vector<Clock::time_point> arrivals;
  FakeUpstream up([&](FakeUpstream::Exchange& ex) {
    {
      std::lock_guard lock(m);
      arrivals.push_back(Clock::now());
    }
    FakeUpstream::reply(ex, 503, "no");
  });
  Proxy proxy(config({up.port()}, "{ retry_on: [5xx], num_retries: 3, backoff: { base: 40ms, max: 80ms } }"));
  auto res = http_get(proxy.port(), "/x");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->result_int(), 503);
  std::lock_guard lock(m);
  ASSERT_EQ(arrivals.size(), 4u);
  // Full jitter: try n waits a random time in [0, min(max, base * 2^(n-1))].
  const std::chrono::milliseconds caps[] = {40ms, 80ms, 80ms};
  for (std::size_t i = 1; i < arrivals.size(); ++i) EXPECT_LE(arrivals[i] - arrivals[i - 1], caps[i - 1] + 60ms) << i;
}

TEST(Retry, TheBudgetCapsARetryStorm) {
  FakeUpstream bad(always(503));
  Proxy proxy(config({bad.port()}, "{ retry_on: [5xx], num_retries: 3, backoff: { base: 1ms } }", "",
                     "    retry_budget: { ratio: 0.2, min_retries_per_second: 1 }"));
  auto s = Socket::connect(proxy.port());
  constexpr int kRequests = 100;
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(s.send(request_text("GET", "/x")));
    ASSERT_TRUE(s.read_response());
  }
  // Without the budget: 400 tries. With it: requests × (1 + ratio) + floor (1/s over 10 s).
  EXPECT_LE(bad.requests(), kRequests * 1.2 + 10);
  EXPECT_GT(bad.requests(), kRequests);
  const auto metrics = http_get(proxy.admin_port(), "/metrics")->body();
  EXPECT_EQ(metrics.find("result=\"budget_exhausted\"} 0"), std::string::npos) << "the budget never refused";
}

}  // namespace

namespace {

TEST(Retry, MaxRetriesCapsConcurrentRetries) {
  FakeUpstream slow_bad([](FakeUpstream::Exchange& ex) {
    std::this_thread::sleep_for(200ms);
    FakeUpstream::reply(ex, 503, "busy");
  });
  Proxy proxy(config({slow_bad.port()}, "{ retry_on: [5xx], num_retries: 1, backoff: { base: 1ms } }", "",
                     "    circuit_breakers: { max_retries: 1 }"));
  std::vector<std::future<std::optional<Response>>> all;
  for (int i = 0; i < 3; ++i)
    all.push_back(std::async(std::launch::async, [&] { return http_get(proxy.port(), "/x"); }));
  for (auto& f : all) {
    auto res = f.get();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->result_int(), 503);
    EXPECT_EQ((*res)["x-outrigger-error"], "");  // the upstream's own 503
  }
  EXPECT_EQ(slow_bad.requests(), 3 + 1);  // one retry got the slot
  EXPECT_TRUE(has(metrics(proxy), "outrigger_upstream_overflow_total{cluster=\"app\",limit=\"max_retries\"} 2"));
}

}  // namespace
