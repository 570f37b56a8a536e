#include "outrigger/observability/tracing.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace outrigger::observability {
namespace {

using config::Propagation;
namespace bhttp = boost::beast::http;
const std::vector<Propagation> kAll{Propagation::b3, Propagation::b3_single, Propagation::w3c};

TEST(TraceContext, ReadsB3MultiHeaders) {
  core::HttpFields f;
  f.set("X-B3-TraceId", "463ac35c9f6413ad48485a3953bb6124");
  f.set("X-B3-SpanId", "a2fb4a1d1a96d312");
  f.set("X-B3-ParentSpanId", "0020000000000001");
  f.set("X-B3-Sampled", "1");
  const auto ctx = extract(f, kAll);
  ASSERT_TRUE(ctx);
  EXPECT_EQ(hex_trace_id(*ctx).view(), "463ac35c9f6413ad48485a3953bb6124");
  EXPECT_EQ(ctx->span_id, 0xa2fb4a1d1a96d312u);
  EXPECT_EQ(ctx->parent_id, 0x0020000000000001u);
  EXPECT_EQ(ctx->sampled, true);
  EXPECT_FALSE(ctx->debug);
  EXPECT_EQ(ctx->format, Propagation::b3);
}

TEST(TraceContext, ReadsB3SingleInEveryShape) {
  core::HttpFields f;
  f.set("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90");
  auto ctx = extract(f, kAll);
  ASSERT_TRUE(ctx);
  EXPECT_EQ(ctx->format, Propagation::b3_single);
  EXPECT_EQ(ctx->span_id, 0xe457b5a2e4d86bd1u);
  EXPECT_EQ(ctx->parent_id, 0x05e3ac9a4f6e3b90u);
  EXPECT_EQ(ctx->sampled, true);

  f.set("b3", "80f198ee56343ba8-e457b5a2e4d86bd1");  // 64-bit, no decision
  ctx = extract(f, kAll);
  ASSERT_TRUE(ctx);
  EXPECT_FALSE(ctx->trace_128);
  EXPECT_FALSE(ctx->sampled);

  f.set("b3", "d");  // a decision alone: debug
  ctx = extract(f, kAll);
  ASSERT_TRUE(ctx);
  EXPECT_EQ(ctx->trace_low, 0u);
  EXPECT_TRUE(ctx->debug);
  EXPECT_EQ(ctx->sampled, true);

  f.set("b3", "0");
  ctx = extract(f, kAll);
  ASSERT_TRUE(ctx);
  EXPECT_EQ(ctx->sampled, false);
}

TEST(TraceContext, ReadsW3cTraceparentAndKeepsTracestate) {
  core::HttpFields f;
  f.set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  f.set("tracestate", "congo=t61rcWkgMzE");
  const auto ctx = extract(f, kAll);
  ASSERT_TRUE(ctx);
  EXPECT_EQ(ctx->format, Propagation::w3c);
  EXPECT_EQ(ctx->span_id, 0x00f067aa0ba902b7u);
  EXPECT_EQ(ctx->sampled, false);
  EXPECT_EQ(ctx->tracestate, "congo=t61rcWkgMzE");
}

TEST(TraceContext, RefusesMalformedContexts) {
  for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},  // zero trace id
           {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"},  // zero span id
           {"traceparent", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},  // forbidden version
           {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"},   // short
           {"b3", "80f198ee56343ba8-e457b5a2e4d86bd1-x"},                               // bad decision
           {"b3", "zzf198ee56343ba8-e457b5a2e4d86bd1"},                                 // not hex
           {"b3", "a-b-c-d-e"}}) {
    core::HttpFields f;
    f.set(name, value);
    EXPECT_FALSE(extract(f, kAll)) << name << ": " << value;
  }
}

TEST(TraceContext, ReadsOnlyTheListedFormatsInOrder) {
  core::HttpFields f;
  f.set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  f.set("b3", "80f198ee56343ba8-e457b5a2e4d86bd1-1");
  EXPECT_EQ(extract(f, {Propagation::w3c, Propagation::b3_single})->format, Propagation::w3c);
  EXPECT_EQ(extract(f, {Propagation::b3_single, Propagation::w3c})->format, Propagation::b3_single);
  EXPECT_FALSE(extract(f, {Propagation::b3}));
}

TEST(TraceContext, WritesWhatItReads) {
  TraceContext ctx;
  ctx.trace_high = 0x463ac35c9f6413adu;
  ctx.trace_low = 0x48485a3953bb6124u;
  ctx.sampled = true;
  for (auto format : kAll) {
    core::HttpFields f;
    inject(f, ctx, 0x1111111111111111u, 0x2222222222222222u, format);
    const auto back = extract(f, kAll);
    ASSERT_TRUE(back) << static_cast<int>(format);
    EXPECT_EQ(back->format, format);
    EXPECT_EQ(hex_trace_id(*back).view(), "463ac35c9f6413ad48485a3953bb6124");
    EXPECT_EQ(back->span_id, 0x1111111111111111u);
    if (format != Propagation::w3c) {
      EXPECT_EQ(back->parent_id, 0x2222222222222222u);
    }
    EXPECT_EQ(back->sampled, true);
  }
  core::HttpFields f;
  ctx.trace_128 = false;
  ctx.trace_high = 0;
  ctx.sampled = false;
  inject(f, ctx, 1, 0, Propagation::w3c);  // W3C ids are 128-bit: left-padded
  EXPECT_EQ(f["traceparent"], "00-000000000000000048485a3953bb6124-0000000000000001-00");
}

TEST(TraceContext, AFreshInjectionThenARetryLeaveOneHeaderOfEach) {
  TraceContext ctx;
  ctx.trace_low = 7;
  ctx.sampled = true;
  for (auto format : kAll) {
    core::HttpFields f;
    bool carriers = true;
    EXPECT_FALSE(extract(f, kAll, &carriers));
    EXPECT_FALSE(carriers);
    inject(f, ctx, 1, 2, format, /*fresh=*/true);  // the first try: nothing to replace
    inject(f, ctx, 3, 2, format);                   // a retry replaces it
    std::size_t fields = 0;
    for (const auto& field : f) ++fields, (void)field;
    EXPECT_EQ(fields, format == Propagation::b3 ? 4u : 1u) << static_cast<int>(format);
    EXPECT_EQ(extract(f, kAll, &carriers)->span_id, 3u);
    EXPECT_TRUE(carriers);
  }
}

TEST(SpanQueue, DropsWhenFullAndDrainsInOrder) {
  SpanQueue q(3);
  Span s;
  for (std::uint64_t i = 1; i <= 3; ++i) {
    s.id = i;
    EXPECT_TRUE(q.push(s));
  }
  EXPECT_FALSE(q.push(s));
  std::vector<Span> out;
  EXPECT_EQ(q.drain(out, 2), 2u);
  s.id = 4;
  EXPECT_TRUE(q.push(s));
  EXPECT_EQ(q.drain(out, 10), 2u);
  ASSERT_EQ(out.size(), 4u);
  for (std::uint64_t i = 0; i < 4; ++i) EXPECT_EQ(out[i].id, i + 1);
}

TEST(Sampling, FollowsTheRate) {
  config::Tracing cfg;
  TracingCounters counters;
  SpanQueues queues(1, 1, counters);
  cfg.sample_rate = 0.1;
  WorkerTracer t(cfg, queues, 0, 42);
  int sampled = 0;
  for (int i = 0; i < 100'000; ++i) sampled += t.sample();
  EXPECT_NEAR(sampled, 10'000, 600);
}

TEST(ZipkinJson, EncodesSpansAsZipkinV2) {
  Span s;
  s.trace_high = 1;
  s.trace_low = 2;
  s.id = 3;
  s.parent_id = 4;
  s.server = false;
  s.timestamp_us = 1'700'000'000'000'000;
  s.duration_us = 0;  // rounded up to 1
  s.status = 503;
  s.attempt = 2;
  s.method.assign("POST");
  s.path.assign(std::string(500, 'p'));  // truncated
  s.cluster.assign("app");
  set_remote(s, boost::asio::ip::make_address("::ffff:10.0.0.7"), 8080);
  const auto doc = boost::json::parse(encode_spans({s}, "reviews")).as_array();
  ASSERT_EQ(doc.size(), 1u);
  const auto& o = doc[0].as_object();
  EXPECT_EQ(o.at("traceId").as_string(), "00000000000000010000000000000002");
  EXPECT_EQ(o.at("id").as_string(), "0000000000000003");
  EXPECT_EQ(o.at("parentId").as_string(), "0000000000000004");
  EXPECT_EQ(o.at("kind").as_string(), "CLIENT");
  EXPECT_EQ(o.at("name").as_string(), "post");
  EXPECT_EQ(o.at("duration").to_number<int>(), 1);
  EXPECT_EQ(o.at("remoteEndpoint").at("ipv4").as_string(), "10.0.0.7");  // a mapped address, as IPv4
  EXPECT_EQ(o.at("tags").at("http.path").as_string().size(), 192u);
  EXPECT_EQ(o.at("tags").at("outrigger.attempt").as_string(), "2");
  EXPECT_EQ(o.at("tags").at("error").as_string(), "503");
}

TEST(ZipkinJson, AnEncoderReusedForManyBatchesGivesTheSameText) {
  std::vector<Span> batch(300);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    batch[i].id = i + 1;
    batch[i].trace_low = 7;
    batch[i].timestamp_us = 1'700'000'000'000'000 + static_cast<std::int64_t>(i);
    batch[i].status = 200;
    batch[i].method.assign("GET");
    batch[i].path.assign("/api/" + std::to_string(i));
    batch[i].peer_identity.assign("spiffe://cluster.local/ns/shop/sa/web");
    set_remote(batch[i], boost::asio::ip::make_address("2001:db8::1"), 443);
  }
  SpanEncoder encoder;
  std::vector<Span> small(batch.begin(), batch.begin() + 2);
  for (const std::vector<Span>* b : {&small, &batch, &small, &batch})
    EXPECT_EQ(encoder.encode(*b, "reviews"), encode_spans(*b, "reviews"));
  const auto doc = boost::json::parse(encoder.encode(batch, "reviews")).as_array();
  ASSERT_EQ(doc.size(), 300u);
  EXPECT_EQ(doc[299].at("tags").at("http.path").as_string(), "/api/299");
  EXPECT_EQ(doc[0].at("tags").at("peer.identity").as_string(), "spiffe://cluster.local/ns/shop/sa/web");
  EXPECT_EQ(doc[0].at("remoteEndpoint").at("ipv6").as_string(), "2001:db8::1");
  EXPECT_EQ(doc[0].at("remoteEndpoint").at("port").to_number<int>(), 443);
}

}  // namespace
}  // namespace outrigger::observability
