// Zipkin tracing: the trace context of an exchange and its propagation
// formats (B3 multi-header, B3 single, W3C traceparent), the spans a worker
// records, and the bounded per-worker queues the main thread's reporter
// drains. Recording a span never allocates and never blocks: a full queue
// drops the span and counts it.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "outrigger/config/config.hpp"
#include "outrigger/core/http_fields.hpp"
#include "outrigger/core/random.hpp"
#include "outrigger/observability/stats.hpp"

namespace outrigger::observability {

// What a request carried, or what the proxy started.
struct TraceContext {
  std::uint64_t trace_high = 0;  // 0 with trace_128 false: a 64-bit trace id
  std::uint64_t trace_low = 0;
  bool trace_128 = true;
  std::uint64_t span_id = 0;    // the caller's span (the parent of ours); 0: none
  std::uint64_t parent_id = 0;  // the caller's parent (B3 only); 0: none
  std::optional<bool> sampled;  // none: the caller left the decision to us
  bool debug = false;
  config::Propagation format = config::Propagation::b3;  // the format it arrived in
  std::string tracestate;                                // W3C, passed on unchanged
};

// The first context found in the headers, in the order of `formats`; none when
// no listed format is present and valid. A sampling decision without ids
// (`b3: 0`, `x-b3-sampled: 1` alone) comes back with trace_low == 0.
// `carriers` tells whether any trace header was there at all (valid or not).
std::optional<TraceContext> extract(const core::HttpFields& f, const std::vector<config::Propagation>& formats,
                                    bool* carriers = nullptr);

// Writes the context the next hop sees: trace id, `span_id` as its parent
// span, `parent_id`, the sampling decision and debug flag, in `format`.
// `fresh`: the fields hold no trace header yet (the first try of a request
// that arrived without one), so they are added without looking for old ones.
void inject(core::HttpFields& f, const TraceContext& ctx, std::uint64_t span_id, std::uint64_t parent_id,
            config::Propagation format, bool fresh = false);

// Lower-case hex of an id, in place (no allocation): 16 characters for a span
// id or a 64-bit trace id, 32 for a 128-bit trace id.
struct HexId {
  std::array<char, 32> data;
  std::size_t size = 0;
  std::string_view view() const { return {data.data(), size}; }
};
HexId hex_id(std::uint64_t id);
HexId hex_trace_id(std::uint64_t high, std::uint64_t low, bool wide);
inline HexId hex_trace_id(const TraceContext& ctx) { return hex_trace_id(ctx.trace_high, ctx.trace_low, ctx.trace_128); }

// A string truncated into a fixed buffer: spans carry no heap memory.
template <std::size_t N>
struct FixedString {
  std::array<char, N> data{};
  std::uint16_t size = 0;
  void assign(std::string_view s) {
    size = static_cast<std::uint16_t>(std::min(s.size(), N));
    std::copy_n(s.data(), size, data.data());
  }
  std::string_view view() const { return {data.data(), size}; }
};

struct Span {
  std::uint64_t trace_high = 0, trace_low = 0;
  bool trace_128 = true;
  std::uint64_t id = 0, parent_id = 0;
  bool server = true;  // kind SERVER, else CLIENT
  bool debug = false;
  std::int64_t timestamp_us = 0;  // epoch microseconds
  std::int64_t duration_us = 1;
  int status = 0;          // 0: no response
  int grpc_status = -1;    // SERVER spans of gRPC requests: the grpc-status sent; -1: none
  bool http2 = false;      // SERVER spans: the client spoke HTTP/2
  std::uint32_t attempt = 0;  // CLIENT spans: the try, from 1
  std::array<std::uint8_t, 16> remote_ip{};
  bool remote_v6 = false, has_remote = false;
  std::uint16_t remote_port = 0;
  FixedString<16> method;
  FixedString<192> path;
  FixedString<64> route, cluster, error;
  FixedString<128> peer_identity;  // SERVER spans: the client's mTLS identity
};

void set_remote(Span& span, const boost::asio::ip::address& ip, std::uint16_t port);

// Single producer (one worker), single consumer (the main thread).
class SpanQueue {
 public:
  explicit SpanQueue(std::size_t capacity);
  bool push(const Span& span);  // false when full
  // Moves up to `max` spans into out.
  std::size_t drain(std::vector<Span>& out, std::size_t max);

 private:
  std::unique_ptr<Span[]> slots_;
  std::size_t capacity_;
  alignas(64) std::atomic<std::size_t> head_{0};  // next to read; written by the consumer
  alignas(64) std::atomic<std::size_t> tail_{0};  // next to write; written by the producer
};

// All workers' queues and the reporting counters, kept across reloads while
// max_queue_spans stays the same.
struct SpanQueues {
  SpanQueues(unsigned workers, std::size_t capacity_per_worker, TracingCounters& counters);
  std::vector<std::unique_ptr<SpanQueue>> queues;
  std::size_t capacity_per_worker;
  TracingCounters& counters;
};

// One worker's handle for one config: the settings, its queue, and its own
// random numbers for ids and sampling. Owned by the worker's pipelines.
class WorkerTracer {
 public:
  WorkerTracer(const config::Tracing& config, SpanQueues& queues, unsigned worker, std::uint64_t seed);
  const config::Tracing& config() const { return config_; }
  std::uint64_t next_id();
  bool sample();  // by sample_rate
  void record(const Span& span);

 private:
  const config::Tracing& config_;
  SpanQueues& queues_;
  SpanQueue& queue_;
  core::Random random_;
};

// Zipkin v2 JSON for batches of spans (a ListOfSpans each), built with
// Boost.JSON in memory the encoder keeps from one batch to the next: after the
// first batches, encoding allocates nothing (no heap growth, no page faults).
class SpanEncoder {
 public:
  SpanEncoder();
  ~SpanEncoder();
  // The batch as JSON text; valid until the next call.
  std::string_view encode(const std::vector<Span>& spans, std::string_view service_name);

 private:
  std::unique_ptr<unsigned char[]> arena_;  // the first block of each batch's JSON arena
  std::size_t arena_size_ = 0;
  std::string text_;
};

// The same, once.
std::string encode_spans(const std::vector<Span>& spans, std::string_view service_name);

// Microseconds since the epoch, for span timestamps.
inline std::int64_t epoch_us(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

}  // namespace outrigger::observability
