// HTTP/2 abuse: each attack ends in a bounded cost (RST_STREAM or GOAWAY
// with the right code, or the connection closed), is counted, and leaves
// the proxy serving other clients meanwhile.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <thread>

#include "support/h2.hpp"
#include "support/net.hpp"

namespace {

using namespace testing_support;

constexpr std::uint32_t kProtocolError = 1, kInternalError = 2, kRefusedStream = 7, kCancel = 8,
                        kEnhanceYourCalm = 11;

std::string config(std::uint16_t app, const std::string& extra = "") {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    {EXTRA}
    routes:
      - { name: hello, match: { path: /hello }, direct_response: { status: 200, body: "hello" } }
      - { name: app, match: { prefix: / }, cluster: app }
clusters:
  - { name: app, endpoints: [127.0.0.1:{APP}] }
)",
              {{"APP", std::to_string(app)}, {"EXTRA", extra}});
}

std::string event(const std::string& name, int n) {
  return "outrigger_http2_events_total{side=\"downstream\",listener=\"ingress\",cluster=\"\",event=\"" + name +
         "\"} " + std::to_string(n);
}

std::string get_headers(std::uint32_t stream, const std::string& path = "/hello") {
  return h2_frame(kHeaders, kEndHeaders | kEndStream, stream,
                  h2_header_block({{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", path}}));
}

// Another client, on its own connection, is served while (and after) the attack runs.
class Bystander {
 public:
  explicit Bystander(std::uint16_t port) : port_(port), thread_([this] { run(); }) {}
  ~Bystander() {
    stop_ = true;
    thread_.join();
  }
  // Every request it made was answered 200, and it made some (waiting, for a
  // while, for the first to be answered when the attack was over quickly).
  bool all_served() const {
    for (int i = 0; i < 500 && ok_ == 0 && failed_ == 0; ++i) std::this_thread::sleep_for(10ms);
    return ok_ > 0 && failed_ == 0;
  }
  std::string report() const { return std::to_string(ok_) + " ok, " + std::to_string(failed_) + " failed"; }

 private:
  void run() {
    H2Client client(port_);
    while (!stop_) {
      auto r = client.get("/hello", {}, 2s);
      (r && r->status == 200 ? ok_ : failed_)++;
      std::this_thread::sleep_for(5ms);
    }
  }
  std::uint16_t port_;
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0}, failed_{0};
  std::thread thread_;
};

TEST(Http2Abuse, RapidResetEndsInGoaway) {
  FakeUpstream app;
  Proxy proxy(config(app.port()));
  Bystander bystander(proxy.port());
  RawH2 raw(proxy.port());
  std::string batch;
  for (std::uint32_t i = 0; i < 1500; ++i) {
    const std::uint32_t id = 2 * i + 1;
    batch += get_headers(id) + h2_frame(kRstStream, 0, id, std::string("\0\0\0\x08", 4));
    if (i % 100 == 99) {
      if (!raw.send(batch)) break;
      batch.clear();
    }
  }
  const auto goaway = raw.until(kGoaway);
  ASSERT_TRUE(goaway);
  EXPECT_EQ(goaway->error_code(), kInternalError);
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), event("rapid_reset", 1)); })) << metrics(proxy);
  EXPECT_TRUE(has(metrics(proxy), event("goaway_sent", 1)));
  EXPECT_TRUE(bystander.all_served()) << bystander.report();
}

TEST(Http2Abuse, ContinuationFloodClosesTheConnection) {
  FakeUpstream app;
  Proxy proxy(config(app.port()));
  Bystander bystander(proxy.port());
  RawH2 raw(proxy.port());
  const auto block = h2_header_block({{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/hello"}});
  std::string flood = h2_frame(kHeaders, 0, 1, block);  // no END_HEADERS: CONTINUATION frames follow
  const auto filler = h2_header_block({{"x-filler", std::string(100, 'f')}});
  for (int i = 0; i < 200; ++i) flood += h2_frame(kContinuation, 0, 1, filler);
  raw.send(flood);
  EXPECT_TRUE(raw.closed_by_peer());
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), event("continuation_flood", 1)); })) << metrics(proxy);
  EXPECT_TRUE(bystander.all_served()) << bystander.report();
}

TEST(Http2Abuse, HpackBombIsAnswered431WithoutDecodingItIntoMemory) {
  FakeUpstream app;
  Proxy proxy(config(app.port()));
  Bystander bystander(proxy.port());
  RawH2 raw(proxy.port());
  // A 4 KiB field into the dynamic table, then named by index ~16,000 times:
  // 64 MiB of headers from a 16 KiB frame.
  std::string block = h2_header_block({{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/hello"}});
  block += '\x40';                                // literal with incremental indexing, new name
  block += '\x07';
  block += "x-bombs";
  block += "\x7f\xa1\x1e";  // value length 4000: 127 + 3873 (7-bit prefix, then 0x21 | 0x80, 0x1e)
  block += std::string(4000, 'b');
  block.append(16384 - block.size(), '\xbe');     // index 62: the entry just added
  raw.send(h2_frame(kHeaders, kEndHeaders | kEndStream, 1, block));
  std::optional<RawH2::Frame> headers;
  for (auto f = raw.next(); f; f = raw.next()) {
    if (f->type == kHeaders && f->stream == 1) {
      headers = f;
      break;
    }
  }
  ASSERT_TRUE(headers);
  const auto fields = raw.decode(*headers);
  ASSERT_FALSE(fields.empty());
  EXPECT_EQ(fields[0].second, "431");
  EXPECT_TRUE(has(metrics(proxy), event("header_list_too_large", 1)));
  EXPECT_TRUE(bystander.all_served()) << bystander.report();
}

TEST(Http2Abuse, SettingsAndPingFloodsEndInEnhanceYourCalm) {
  FakeUpstream app;
  Proxy proxy(config(app.port()));
  Bystander bystander(proxy.port());
  for (const auto type : {kSettings, kPing}) {
    RawH2 raw(proxy.port());
    std::string flood;
    const std::string payload = type == kPing ? std::string(8, 'p') : std::string();
    for (int i = 0; i < 1500; ++i) flood += h2_frame(type, 0, 0, payload);
    raw.send(flood);
    const auto goaway = raw.until(kGoaway);
    ASSERT_TRUE(goaway) << int{type};
    EXPECT_EQ(goaway->error_code(), kEnhanceYourCalm);
    EXPECT_TRUE(raw.closed_by_peer());
  }
  EXPECT_TRUE(has(metrics(proxy), event("control_flood", 2))) << metrics(proxy);
  EXPECT_TRUE(bystander.all_served()) << bystander.report();
}

TEST(Http2Abuse, AZeroWindowStreamIsResetAfterTheIdleTimeout) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), "idle_timeout: 300ms"));
  Bystander bystander(proxy.port());
  RawH2 raw(proxy.port(), {{4 /* INITIAL_WINDOW_SIZE */, 0}});
  raw.send(get_headers(1));
  const auto rst = raw.until(kRstStream, 5s, 1);
  ASSERT_TRUE(rst);
  EXPECT_EQ(rst->error_code(), kCancel);
  EXPECT_TRUE(has(metrics(proxy), event("stream_idle_timeout", 1)));
  EXPECT_TRUE(bystander.all_served()) << bystander.report();
}

TEST(Http2Abuse, AClientThatReadsNothingIsDisconnected) {
  const std::string big(32 << 20, 'x');
  FakeUpstream app([&](FakeUpstream::Exchange& ex) { FakeUpstream::reply(ex, 200, big); });
  Proxy proxy(config(app.port(), "idle_timeout: 300ms"));
  Bystander bystander(proxy.port());
  RawH2 raw(proxy.port(), {{4, 0x7fffffff}});
  int small = 4096;
  ::setsockopt(raw.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  const std::uint32_t more = 0x7fffffff - 65535;
  raw.send(h2_frame(kWindowUpdate, 0, 0,
                    std::string{static_cast<char>(more >> 24), static_cast<char>((more >> 16) & 0xff),
                                static_cast<char>((more >> 8) & 0xff), static_cast<char>(more & 0xff)}) +
           get_headers(1, "/big"));
  // Nothing is read: TCP's window shuts, then the proxy gives up on us.
  // A deadline, not a wait: 32 MB through an ASan build on a loaded machine can take seconds to stall.
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), event("write_timeout", 1)); }, 15s)) << metrics(proxy);
  EXPECT_TRUE(bystander.all_served()) << bystander.report();
}

TEST(Http2Abuse, StreamsPastTheLimitAreRefused) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), "http2: { max_concurrent_streams: 10 }"));
  Bystander bystander(proxy.port());
  RawH2 raw(proxy.port());
  ASSERT_TRUE(raw.until(kSettings));
  raw.send(h2_frame(kSettings, kAck, 0, ""));
  std::string streams;
  const auto block = h2_header_block({{":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/hello"}});
  for (std::uint32_t i = 0; i < 11; ++i) streams += h2_frame(kHeaders, kEndHeaders, 2 * i + 1, block);  // bodies never come
  raw.send(streams);
  // nghttp2 refuses the eleventh: a stream error (REFUSED_STREAM) before our
  // SETTINGS were acknowledged, a connection error (PROTOCOL_ERROR) after.
  bool refused = false;
  for (auto f = raw.next(); f && !refused; f = raw.next()) {
    if (f->type == kRstStream && f->stream == 21) refused = f->error_code() == kRefusedStream;
    if (f->type == kGoaway) refused = f->error_code() == kProtocolError;
  }
  EXPECT_TRUE(refused);
  EXPECT_TRUE(has(metrics(proxy), event("refused_stream", 1))) << metrics(proxy);
  EXPECT_TRUE(bystander.all_served()) << bystander.report();
}

}  // namespace
