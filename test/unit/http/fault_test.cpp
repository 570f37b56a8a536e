#include <gtest/gtest.h>

#include "http/filters/fault/config.hpp"
#include "test_exchange.hpp"

namespace outrigger::http {
namespace {

using boost::beast::http::verb;
using testing::FilterHarness;
using testing::TestExchange;

std::string errors_of(const std::string& yaml) {
  FilterHarness h(yaml);
  EXPECT_EQ(h.factory == nullptr, !h.errors.empty());
  return h.error_text();
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(FaultConfig, AcceptsDelaysAbortsAndHeaderForms) {
  EXPECT_EQ(errors_of("{ type: fault, delay: { fixed: 2s, percent: 10 } }"), "");
  EXPECT_EQ(errors_of("{ type: fault, abort: { status: 503, percent: 0.5 } }"), "");
  EXPECT_EQ(errors_of("{ type: fault, abort: { grpc_status: 14 } }"), "");
  EXPECT_EQ(errors_of("{ type: fault, delay: { header: true }, abort: { header: true }, max_active_faults: 3 }"), "");
}

TEST(FaultConfig, ReportsWhereAndWhatIsWrong) {
  EXPECT_TRUE(has(errors_of("{ type: fault }"), "1:1: filters[0]: needs 'delay', 'abort' or both"));
  EXPECT_TRUE(has(errors_of("{ type: fault, dealy: { fixed: 1s } }"), "did you mean 'delay'"));
  EXPECT_TRUE(has(errors_of("{ type: fault, abort: { status: 503, percent: 101 } }"),
                  "filters[0].abort.percent: must be a number from 0 to 100"));
  EXPECT_TRUE(has(errors_of("{ type: fault, abort: { status: 503, percent: -1 } }"), "abort.percent"));
  EXPECT_TRUE(has(errors_of("{ type: fault, abort: { status: 700 } }"), "filters[0].abort.status: must be from 200 to 599"));
  EXPECT_TRUE(has(errors_of("{ type: fault, abort: { grpc_status: 17 } }"), "filters[0].abort.grpc_status: must be from 0 to 16"));
  EXPECT_TRUE(has(errors_of("{ type: fault, abort: { status: 503, grpc_status: 14 } }"),
                  "filters[0].abort: needs exactly one of 'status', 'grpc_status' or 'header: true'"));
  EXPECT_TRUE(has(errors_of("{ type: fault, abort: { percent: 5 } }"), "needs exactly one of"));
  EXPECT_TRUE(has(errors_of("{ type: fault, delay: { percent: 5 } }"),
                  "filters[0].delay: needs exactly one of 'fixed' (a duration) or 'header: true'"));
  EXPECT_TRUE(has(errors_of("{ type: fault, delay: { fixed: soon } }"), "filters[0].delay.fixed: invalid duration 'soon'"));
  EXPECT_TRUE(has(errors_of("{ type: fault, delay: { fixed: 0s } }"), "filters[0].delay.fixed: must be greater than 0"));
  EXPECT_TRUE(has(errors_of("{ type: fault, delay: { fixed: 1s, header: true } }"), "needs exactly one of"));
  EXPECT_TRUE(has(errors_of("{ type: fault, delay: { fixed: 1s }, max_active_faults: 0 }"),
                  "filters[0].max_active_faults: must be from 1 to"));
  EXPECT_TRUE(has(errors_of("{ type: fault, abort: { status: 503 }, headers: [{ name: x-a, regex: '(' }] }"),
                  "filters[0].headers[0].regex: invalid regex '('"));
  EXPECT_TRUE(has(errors_of("{ type: fault, abort: { status: 503 }, headers: [{ exact: on }] }"),
                  "filters[0].headers[0]: missing required key 'name'"));
  EXPECT_TRUE(has(errors_of("{ type: fault, abort: { status: 503 }, headers: { name: x-a } }"), "filters[0].headers"));
  // Positioned at the value: line 1, the column of `700`.
  EXPECT_TRUE(has(errors_of("{ type: fault, abort: { status: 700 } }"), "1:33:"));
}

TEST(FaultPercent, SamplesItsShare) {
  core::Random random(42);
  auto share = [&](double percent) {
    const FaultPercent p(percent);
    int hits = 0;
    for (int i = 0; i < 200000; ++i) hits += p.sample(random);
    return hits / 2000.0;  // percent
  };
  EXPECT_EQ(share(0), 0);
  EXPECT_EQ(share(100), 100);
  EXPECT_NEAR(share(10), 10, 0.5);
  EXPECT_NEAR(share(50), 50, 1);
  EXPECT_NEAR(share(0.5), 0.5, 0.1);
}

TEST(Fault, AbortsWithTheConfiguredStatusAndCountsIt) {
  FilterHarness h("{ type: fault, abort: { status: 503 } }");
  ASSERT_TRUE(h.filter) << h.error_text();
  TestExchange a(verb::get, "/");
  auto reply = h.on_request(a.get());
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 503);
  EXPECT_EQ(reply->reason, "fault_abort");
  EXPECT_EQ(h.count("outrigger_fault_injected_total", {"inbound", "ingress", "abort"}), 1u);
  EXPECT_EQ(h.count("outrigger_fault_injected_total", {"inbound", "ingress", "delay"}), 0u);
}

TEST(Fault, HeadersNarrowTheFaultsToTheRequestsThatMatch) {
  FilterHarness h("{ type: fault, abort: { status: 503 }, headers: [{ name: X-Chaos, exact: 'on' }, "
                  "{ name: x-canary, absent: true }] }");
  ASSERT_TRUE(h.filter) << h.error_text();
  TestExchange plain(verb::get, "/"), chaos(verb::get, "/"), off(verb::get, "/"), canary(verb::get, "/");
  chaos.request.set("x-chaos", "on");
  off.request.set("x-chaos", "off");
  canary.request.set("x-chaos", "on");
  canary.request.set("x-canary", "1");
  EXPECT_FALSE(h.on_request(plain.get()));
  EXPECT_FALSE(h.on_request(off.get()));
  EXPECT_FALSE(h.on_request(canary.get()));
  auto reply = h.on_request(chaos.get());
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 503);
  EXPECT_EQ(h.count("outrigger_fault_injected_total", {"inbound", "ingress", "abort"}), 1u);
}

TEST(Fault, GrpcAbortIsATrailersOnlyReply) {
  FilterHarness h("{ type: fault, abort: { grpc_status: 14 } }");
  TestExchange a(verb::post, "/pkg.Svc/Call");
  a.request.set("content-type", "application/grpc");
  auto& ex = a.get();
  ex.grpc = true;
  auto reply = h.on_request(ex);
  ASSERT_TRUE(reply);
  testing::run(send_local_reply(ex, *reply));
  EXPECT_EQ(a.down.local_status, 200);
  EXPECT_EQ(a.down.local_header["grpc-status"], "14");
  EXPECT_EQ(a.down.local_header["grpc-message"], "fault filter abort");
  EXPECT_EQ(a.down.local_header["content-type"], "application/grpc");
  EXPECT_EQ(a.down.local_header["x-outrigger-error"], "fault_abort");
  EXPECT_EQ(a.down.local_body, "");
  EXPECT_EQ(ex.grpc_status, 14);
}

TEST(Fault, HeaderFaultsOnlyWhereTheConfigSaysHeader) {
  FilterHarness fixed("{ type: fault, abort: { status: 500, percent: 0 } }");
  FilterHarness header("{ type: fault, abort: { header: true } }");
  TestExchange a(verb::get, "/"), b(verb::get, "/"), c(verb::get, "/");
  a.get().control.fault_abort_status = 418;
  b.get().control.fault_abort_status = 418;
  EXPECT_EQ(fixed.status(a.get()), 0);  // the header cannot turn on what the config has at 0 %
  EXPECT_EQ(header.status(b.get()), 418);
  EXPECT_EQ(header.status(c.get()), 0);  // no header: no fault
  TestExchange g(verb::get, "/");
  g.get().control.fault_abort_grpc_status = 8;
  auto reply = header.on_request(g.get());
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->grpc_status, 8);
}

TEST(Fault, HeaderPercentageLowersButNeverRaisesTheConfiguredShare) {
  FilterHarness low("{ type: fault, abort: { header: true, percent: 0 } }");
  FilterHarness all("{ type: fault, abort: { header: true } }");
  int low_hits = 0, all_hits = 0;
  for (int i = 0; i < 200; ++i) {
    TestExchange a(verb::get, "/"), b(verb::get, "/");
    a.get().control.fault_abort_status = 503;
    a.get().control.fault_abort_percent = 100;
    b.get().control.fault_abort_status = 503;
    b.get().control.fault_abort_percent = 0;
    low_hits += low.status(a.get()) == 503;
    all_hits += all.status(b.get()) == 503;
  }
  EXPECT_EQ(low_hits, 0);
  EXPECT_EQ(all_hits, 0);
}

TEST(Fault, SkipsFaultsPastMaxActiveFaultsAndCountsOverflow) {
  FilterHarness h("{ type: fault, abort: { status: 503 }, max_active_faults: 1 }");
  const std::vector<std::string> labels{"inbound", "ingress"};
  {
    TestExchange first(verb::get, "/");
    EXPECT_EQ(h.status(first.get()), 503);  // in a fault until its exchange ends
    EXPECT_EQ(h.stats.gauge_value("outrigger_fault_active", labels), 1);
    TestExchange second(verb::get, "/");
    EXPECT_EQ(h.status(second.get()), 0);
    EXPECT_EQ(h.count("outrigger_fault_overflow_total", labels), 1u);
  }
  EXPECT_EQ(h.stats.gauge_value("outrigger_fault_active", labels), 0);
  TestExchange third(verb::get, "/");
  EXPECT_EQ(h.status(third.get()), 503);
}

TEST(Fault, DelayEndsAtTheRouteTimeoutWith504) {
  FilterHarness h("{ type: fault, delay: { fixed: 30s } }");
  config::Route route;
  route.timeout = std::chrono::milliseconds(50);
  TestExchange a(verb::get, "/");
  a.get().route = &route;
  const auto start = std::chrono::steady_clock::now();
  auto reply = h.on_request(a.get());
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 504);
  EXPECT_EQ(a.get().error, ProxyError::timeout);
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_EQ(h.count("outrigger_fault_injected_total", {"inbound", "ingress", "delay"}), 1u);
}

TEST(Fault, DelaysThenLetsTheRequestGoOn) {
  FilterHarness h("{ type: fault, delay: { fixed: 100ms } }");
  TestExchange a(verb::get, "/");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(h.on_request(a.get()));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
}

}  // namespace
}  // namespace outrigger::http
