// Metrics. Each worker increments its own slice of every series with plain
// relaxed stores (one writer per slice, no lock, no read-modify-write
// contention); the admin thread sums the slices when Prometheus scrapes and
// hands them to prometheus-cpp's TextSerializer. Series are resolved when a
// config loads and kept across reloads (counters never go backwards); the
// request path only increments through pointers it already holds.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace outrigger::observability {

// Written by one thread, read by any.
class Counter {
 public:
  void inc(std::uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  std::uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

// Written by one thread, read by any.
class Gauge {
 public:
  void add(std::int64_t n) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  std::int64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> v_{0};
};

// Fixed buckets from 0.5 ms to 10 s. Written by one thread, read by any.
class Histogram {
 public:
  static constexpr std::array<double, 14> kBoundsSeconds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                         0.1,    0.25,  0.5,    1,     2.5,   5,     10};
  void observe(std::chrono::microseconds d);
  std::uint64_t bucket(std::size_t i) const { return counts_[i].value(); }  // not cumulative; i <= size
  std::uint64_t sum_micros() const { return sum_us_.value(); }

 private:
  std::array<Counter, kBoundsSeconds.size() + 1> counts_;  // last: +Inf
  Counter sum_us_;
};

// One slice per worker, each on its own cache lines.
template <class Slice>
class PerWorker {
 public:
  explicit PerWorker(unsigned workers) : n_(workers), slices_(new Padded[workers]) {}
  Slice& operator[](unsigned worker) { return slices_[worker].slice; }
  const Slice& operator[](unsigned worker) const { return slices_[worker].slice; }
  unsigned size() const { return n_; }

 private:
  struct alignas(64) Padded {
    Slice slice;
  };
  unsigned n_;
  std::unique_ptr<Padded[]> slices_;
};

struct RouteSlice {
  static constexpr int kMinCode = 100, kMaxCode = 599;
  std::array<Counter, kMaxCode - kMinCode + 1> responses;  // by status code
  Histogram duration;
  Counter bytes_received;  // request body bytes
  Counter bytes_sent;      // response body bytes
  std::array<Counter, 17> grpc;  // gRPC requests by grpc-status (0..16)

  void record(int code, std::chrono::microseconds d, std::uint64_t received, std::uint64_t sent) {
    if (code >= kMinCode && code <= kMaxCode) responses[code - kMinCode].inc();
    duration.observe(d);
    if (received) bytes_received.inc(received);
    if (sent) bytes_sent.inc(sent);
  }
  void record_grpc(int status) {
    if (status >= 0 && status < static_cast<int>(grpc.size())) grpc[static_cast<std::size_t>(status)].inc();
  }
};

// Why a TLS handshake failed (the `reason` label of the handshake-failure metrics).
enum class TlsFailure : std::uint8_t { no_client_cert, unknown_ca, expired, identity_mismatch, protocol };
inline constexpr std::array<std::string_view, 5> kTlsFailureNames{"no_client_cert", "unknown_ca", "expired",
                                                                  "identity_mismatch", "protocol"};

// What an HTTP/2 connection went through (the `event` label of
// outrigger_http2_events_total): frames that end streams or connections, and
// the abuse limits, each counted where nghttp2 or the session enforces it.
enum class Http2Event : std::uint8_t {
  goaway_sent,            // GOAWAY with an error (a graceful one is not counted)
  goaway_received,
  reset_sent,             // RST_STREAM
  reset_received,
  refused_stream,         // a stream past max_concurrent_streams
  rapid_reset,            // streams reset faster than the limit (CVE-2023-44487)
  continuation_flood,     // too many CONTINUATION frames for one header block
  control_flood,          // PING, SETTINGS, PRIORITY, WINDOW_UPDATE or empty DATA frames without traffic between
  outbound_flood,         // replies queued for a peer that does not read them
  header_list_too_large,  // a header block past max_header_list_size (answered 431)
  protocol_error,         // any other connection error (framing, HPACK, flow control)
  stream_idle_timeout,    // a stream with nothing moving for the idle timeout (reset)
  write_timeout,          // a peer that took no bytes for the idle timeout (connection closed)
  keepalive_timeout,      // no PING ACK within ping_timeout (connection closed)
};
inline constexpr std::array<std::string_view, 14> kHttp2EventNames{
    "goaway_sent",         "goaway_received",  "reset_sent",          "reset_received",
    "refused_stream",      "rapid_reset",      "continuation_flood",  "control_flood",
    "outbound_flood",      "header_list_too_large", "protocol_error", "stream_idle_timeout",
    "write_timeout",       "keepalive_timeout"};

struct Http2Slice {
  Gauge connections_active;
  Counter connections_total;
  std::array<Counter, kHttp2EventNames.size()> events;
  void count(Http2Event e) { events[static_cast<std::size_t>(e)].inc(); }
};

// The protocol label of the request series.
enum class HttpProtocol : std::uint8_t { http1, http2 };
inline constexpr std::array<std::string_view, 2> kHttpProtocolNames{"http1", "http2"};

// What protocol detection decided for a connection (the `result` label of
// outrigger_protocol_detections_total).
enum class DetectResult : std::uint8_t {
  http1,        // an HTTP/1.x request line
  http2,        // the HTTP/2 preface
  tls,          // a TLS ClientHello
  tcp,          // bytes of another protocol
  timeout,      // the client sent nothing (or too little) within detect_timeout: TCP
  opaque_port,  // a destination port in opaque_ports: TCP without looking
};
inline constexpr std::array<std::string_view, 6> kDetectResultNames{"http1", "http2", "tls", "tcp", "timeout",
                                                                    "opaque_port"};

// Why a listener refused a connection at accept (the `reason` label of
// outrigger_downstream_connections_refused_total).
enum class ConnectionRefusal : std::uint8_t {
  max_downstream_connections,  // the process-wide limit (overload.max_downstream_connections)
  max_connections,             // the listener's own limit
};
inline constexpr std::array<std::string_view, 2> kConnectionRefusalNames{"max_downstream_connections",
                                                                         "max_connections"};

// What a tunnel carries (the `kind` label of the outrigger_tunnel* series).
enum class TunnelKind : std::uint8_t { tcp, tls_passthrough, upgrade };
inline constexpr std::array<std::string_view, 3> kTunnelKindNames{"tcp", "tls_passthrough", "upgrade"};

struct TunnelSlice {
  Counter total;
  Gauge active;
  Counter received;  // bytes from the client
  Counter sent;      // bytes to the client
  Counter idle_timeouts;
  Counter refused;   // no upstream (connect failure, overflow, no endpoint, passthrough denied, RBAC)
  Histogram duration;
};

struct ListenerSlice {
  Gauge connections_active;
  Counter connections_total;
  Gauge tls_connections_active;  // of those, over TLS
  Counter tls_connections_total;
  Counter bad_requests;  // answered 4xx by the codec (malformed, too large, too slow)
  Counter tls_handshakes;  // completed
  std::array<Counter, kTlsFailureNames.size()> tls_failures;  // by TlsFailure
  void count(TlsFailure f) { tls_failures[static_cast<std::size_t>(f)].inc(); }
  std::array<Counter, kHttpProtocolNames.size()> requests;  // exchanges started, by protocol
  void count(HttpProtocol p) { requests[static_cast<std::size_t>(p)].inc(); }
  Http2Slice http2;
  std::array<Counter, kDetectResultNames.size()> detections;
  void count(DetectResult r) { detections[static_cast<std::size_t>(r)].inc(); }
  Histogram detection_duration;
  Counter passthrough_allowed, passthrough_denied;  // original destinations in no cluster
  std::array<TunnelSlice, kTunnelKindNames.size()> tunnels;
  TunnelSlice& tunnel(TunnelKind k) { return tunnels[static_cast<std::size_t>(k)]; }
  std::array<Counter, kConnectionRefusalNames.size()> connections_refused;  // closed at accept, by ConnectionRefusal
  void count(ConnectionRefusal r) { connections_refused[static_cast<std::size_t>(r)].inc(); }
  Counter shed_requests;  // answered 503 overload: the worker had max_requests_per_worker in flight
};

struct ClusterSlice {
  Gauge connections_active;
  Counter connections_total;
  Counter connect_failures;
  Counter requests;
  Counter overflow_connections;  // a pending request waited past the connect timeout for a connection slot
  Counter overflow_pending;      // the pending queue was full
  Counter overflow_requests;     // max_requests was reached
  Counter overflow_retries;      // max_retries (concurrent retries) was reached
  Counter retries;               // retries sent
  Counter retries_succeeded;     // requests that succeeded after a retry
  Counter retries_budget_exhausted;  // retries refused by the retry budget
  Counter timeouts;              // per-try and route timeouts
  Histogram try_duration;        // each try: from taking a connection to its end
  Counter tls_handshakes;        // completed, with an endpoint
  std::array<Counter, kTlsFailureNames.size()> tls_failures;  // by TlsFailure
  void count(TlsFailure f) { tls_failures[static_cast<std::size_t>(f)].inc(); }
  Http2Slice http2;
};

// The shared state of a cluster's classic breaker (upstream::CircuitBreaker
// is the logic): all workers see one state and one failure window.
struct BreakerData {
  struct Slot {  // one second of the window
    std::atomic<std::int64_t> second{-1};
    std::atomic<std::uint32_t> calls{0}, failures{0};
  };
  static constexpr std::size_t kMaxWindowSeconds = 60;
  std::atomic<int> state{0};  // 0 closed, 1 open, 2 half-open (the metric's values)
  std::atomic<std::int64_t> since_ms{0};  // when the state last changed (steady clock)
  std::atomic<std::uint32_t> probes{0}, probe_successes{0};
  std::atomic<std::uint64_t> opened_total{0};
  std::array<Slot, kMaxWindowSeconds> slots;
};

// The shared state of one endpoint (upstream::OutlierDetector and
// upstream::HealthChecker are the logic): every worker sees one verdict.
struct EndpointData {
  std::atomic<bool> healthy{true};                // the active health check's verdict
  std::atomic<std::int64_t> ejected_until_ms{0};  // outlier detection (steady clock); past: not ejected
  std::atomic<std::uint32_t> consecutive_5xx{0}, consecutive_gateway{0};
  std::atomic<std::uint32_t> ejections{0};        // the ejection-time multiplier
  bool available(std::int64_t now_ms) const {
    return healthy.load(std::memory_order_relaxed) && ejected_until_ms.load(std::memory_order_relaxed) <= now_ms;
  }
};

// A cluster's endpoints, by configured name; kept across reloads while the
// cluster keeps the same endpoints.
struct EndpointSet {
  explicit EndpointSet(std::vector<std::string> endpoint_names)
      : names(std::move(endpoint_names)), data(names.size()) {}
  std::vector<std::string> names;
  std::vector<EndpointData> data;  // never resized (atomics do not move)
};

// Span reporting, all workers together (atomics: touched only when a span is
// dropped, and by the reporter on the main thread).
struct TracingCounters {
  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> dropped_queue_full{0};
  std::atomic<std::uint64_t> dropped_collector{0};
};

// What the circuit-breaker thresholds count: shared by all workers, so the
// limits hold for the cluster as a whole. Atomic adds, never a lock.
struct ClusterLoad {
  std::atomic<std::int64_t> connections{0};
  std::atomic<std::int64_t> pending{0};
  std::atomic<std::int64_t> requests{0};
  std::atomic<std::int64_t> retries{0};
  std::atomic<std::uint64_t> ejections_total{0};  // outlier detection
  BreakerData breaker;
};

struct RouteStats {
  std::string direction, listener, route, cluster;
  PerWorker<RouteSlice> workers;
};

// Requests per authority (the Host a client asked for) on one listener. A
// series is made when an authority first appears, at most `limit` of them; the
// rest count as authority="other". Workers reach their series through a small
// cache of their own (server::Pipeline), so the lock is taken only when a
// worker meets an authority it has not seen lately, and by the scrape.
class AuthorityStats {
 public:
  explicit AuthorityStats(unsigned workers) : workers_(workers) {}
  // The series for `authority` (lower case), or "other" past the limit.
  PerWorker<Counter>* find_or_add(std::string_view authority, std::size_t limit);
  // f(authority, total over the workers), in name order.
  void for_each(const std::function<void(const std::string&, std::uint64_t)>& f) const;

 private:
  unsigned workers_;
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<PerWorker<Counter>>, std::less<>> series_;
  std::unique_ptr<PerWorker<Counter>> other_;
};

struct ListenerStats {
  std::string name, direction;
  PerWorker<ListenerSlice> workers;
  AuthorityStats authorities;
  // Its connections on every worker, for the listener's max_connections
  // (an atomic add at accept and close; kept across reloads).
  std::atomic<std::uint64_t> connections_open{0};
};

// The process's load against the overload limits: client connections on
// every listener (the admin's aside), each worker's requests in flight, and
// the limits in force (set by the main thread when a config is published;
// read by the scrape).
struct OverloadState {
  explicit OverloadState(unsigned workers) : requests_in_flight(workers) {}
  std::atomic<std::uint64_t> downstream_connections{0};  // an atomic add at accept and close
  PerWorker<Gauge> requests_in_flight;                  // each written by its worker only
  std::atomic<std::uint64_t> max_downstream_connections{0}, max_requests_per_worker{0};  // 0: no limit
};

// A counter family that the component counting it declares itself (a
// filter, when its config loads): name, help and label names here, series by
// label values, one slice per worker each. Series are kept across reloads
// like every other (the same values give the same series).
class CounterFamily {
 public:
  CounterFamily(std::string name, std::string help, std::vector<std::string> labels, unsigned workers)
      : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)), workers_(workers) {}
  const std::string& name() const { return name_; }
  const std::vector<std::string>& labels() const { return labels_; }

 private:
  friend class Stats;
  std::string name_, help_;
  std::vector<std::string> labels_;
  unsigned workers_;
  std::map<std::vector<std::string>, std::unique_ptr<PerWorker<Counter>>> series_;
};

// A gauge family declared by its owner, like CounterFamily, whose series
// are one value for all workers (atomic adds): what several workers count
// against one limit, such as the fault filter's active faults. Kept across
// reloads, so requests of an old config that end later still count down.
class GaugeFamily {
 public:
  GaugeFamily(std::string name, std::string help, std::vector<std::string> labels)
      : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)) {}
  const std::string& name() const { return name_; }

 private:
  friend class Stats;
  std::string name_, help_;
  std::vector<std::string> labels_;
  std::map<std::vector<std::string>, std::unique_ptr<std::atomic<std::int64_t>>> series_;
};

// One set of TLS files (a listener's or a cluster's; the other name is
// empty), as its watcher last loaded them. Main thread.
struct TlsMaterialStats {
  std::string listener, cluster;
  std::int64_t cert_not_after = 0;  // the serving certificate's expiry, seconds since the epoch
  std::uint64_t reloads_ok = 0, reloads_failed = 0;
};

struct ClusterStats {
  std::string name;
  PerWorker<ClusterSlice> workers;
  ClusterLoad load;  // kept across reloads with the series
  // The current config's endpoints (set on the main thread when a config is
  // committed; read there by the scrape).
  std::shared_ptr<EndpointSet> endpoints;
  // strict_dns and logical_dns clusters: lookups by result (main thread
  // writes, the scrape reads).
  std::atomic<bool> dns{false};
  std::atomic<std::uint64_t> dns_ok{0}, dns_empty{0}, dns_failed{0};
};

class Stats {
 public:
  explicit Stats(unsigned workers);
  ~Stats();

  // Main thread only (config load). The same labels give the same object, so
  // a reload keeps counting where the old config left off. Never null.
  RouteStats* route(std::string_view direction, std::string_view listener, std::string_view route,
                    std::string_view cluster);
  ListenerStats* listener(std::string_view name, std::string_view direction);
  ClusterStats* cluster(std::string_view name);
  TlsMaterialStats* tls_material(std::string_view listener, std::string_view cluster);
  // A family declared by its owner (main thread, config load). The same name
  // gives the same family; its labels must then be the same (std::logic_error).
  CounterFamily& counter_family(std::string_view name, std::string_view help, std::vector<std::string> labels);
  // The series of `family` for these label values (one per label). Never null.
  PerWorker<Counter>* series(CounterFamily& family, std::vector<std::string> values);

  // The same for gauges shared by the workers (GaugeFamily).
  GaugeFamily& gauge_family(std::string_view name, std::string_view help, std::vector<std::string> labels);
  std::atomic<std::int64_t>* gauge(GaugeFamily& family, std::vector<std::string> values);
  std::int64_t gauge_value(std::string_view family, const std::vector<std::string>& values) const;

  // The total over the workers of one series of a family; 0 when it has none
  // such (tests and the admin pages).
  std::uint64_t counter_value(std::string_view family, const std::vector<std::string>& values) const;

  // A config build (main thread): the series it makes are kept only if it
  // commits, so a rejected config leaves no series of the routes, clusters or
  // filters it named. Builds do not nest.
  void begin_build();
  void commit_build();
  void abort_build();

  void count_reload(bool success);
  unsigned workers() const { return workers_; }
  TracingCounters& tracing() { return tracing_; }
  OverloadState& overload() { return overload_; }

  // The Prometheus text exposition of every series (admin thread).
  std::string scrape() const;

 private:
  unsigned workers_;
  std::map<std::tuple<std::string, std::string, std::string, std::string>, std::unique_ptr<RouteStats>> routes_;
  std::map<std::string, std::unique_ptr<ListenerStats>, std::less<>> listeners_;
  std::map<std::string, std::unique_ptr<ClusterStats>, std::less<>> clusters_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<TlsMaterialStats>> tls_;
  std::map<std::string, std::unique_ptr<CounterFamily>, std::less<>> families_;
  std::map<std::string, std::unique_ptr<GaugeFamily>, std::less<>> gauge_families_;
  bool building_ = false;
  std::vector<std::function<void()>> undo_;  // removes what the build in progress made
  void made(std::function<void()> undo);
  std::atomic<std::uint64_t> reloads_ok_{0}, reloads_failed_{0};
  TracingCounters tracing_;
  OverloadState overload_;
  std::chrono::system_clock::time_point start_time_;
};

}  // namespace outrigger::observability
