#include "outrigger/observability/stats.hpp"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <vector>

#include "outrigger/core/version.hpp"

namespace outrigger::observability {

void Histogram::observe(std::chrono::microseconds d) {
  const auto us = static_cast<std::uint64_t>(std::max<std::int64_t>(0, d.count()));
  const double s = static_cast<double>(us) / 1e6;
  std::size_t i = 0;
  while (i < kBoundsSeconds.size() && s > kBoundsSeconds[i]) ++i;
  counts_[i].inc();
  sum_us_.inc(us);
}

Stats::Stats(unsigned workers) : workers_(workers), overload_(workers), start_time_(std::chrono::system_clock::now()) {}
Stats::~Stats() = default;

RouteStats* Stats::route(std::string_view direction, std::string_view listener, std::string_view route,
                         std::string_view cluster) {
  auto key = std::make_tuple(std::string(direction), std::string(listener), std::string(route), std::string(cluster));
  auto& slot = routes_[key];
  if (!slot) {
    slot.reset(new RouteStats{std::get<0>(key), std::get<1>(key), std::get<2>(key), std::get<3>(key),
                              PerWorker<RouteSlice>(workers_)});
    made([this, key] { routes_.erase(key); });
  }
  return slot.get();
}

ListenerStats* Stats::listener(std::string_view name, std::string_view direction) {
  auto it = listeners_.find(name);
  if (it == listeners_.end()) {
    it = listeners_
             .emplace(std::string(name), std::unique_ptr<ListenerStats>(new ListenerStats{
                                             std::string(name), std::string(direction),
                                             PerWorker<ListenerSlice>(workers_), AuthorityStats(workers_)}))
             .first;
    made([this, key = std::string(name)] { listeners_.erase(key); });
  }
  it->second->direction = std::string(direction);
  return it->second.get();
}

ClusterStats* Stats::cluster(std::string_view name) {
  auto it = clusters_.find(name);
  if (it == clusters_.end()) {
    it = clusters_
             .emplace(std::string(name), std::unique_ptr<ClusterStats>(new ClusterStats{
                                             std::string(name), PerWorker<ClusterSlice>(workers_)}))
             .first;
    made([this, key = std::string(name)] { clusters_.erase(key); });
  }
  return it->second.get();
}

TlsMaterialStats* Stats::tls_material(std::string_view listener, std::string_view cluster) {
  std::pair<std::string, std::string> key{std::string(listener), std::string(cluster)};
  auto& slot = tls_[key];
  if (!slot) {
    slot.reset(new TlsMaterialStats{key.first, key.second});
    made([this, key] { tls_.erase(key); });
  }
  return slot.get();
}

CounterFamily& Stats::counter_family(std::string_view name, std::string_view help, std::vector<std::string> labels) {
  auto it = families_.find(name);
  if (it != families_.end()) {
    if (it->second->labels_ != labels) throw std::logic_error("metric " + std::string(name) + " declared with other labels");
    return *it->second;
  }
  it = families_
           .emplace(std::string(name), std::make_unique<CounterFamily>(std::string(name), std::string(help),
                                                                         std::move(labels), workers_))
           .first;
  made([this, key = std::string(name)] { families_.erase(key); });
  return *it->second;
}

PerWorker<Counter>* Stats::series(CounterFamily& family, std::vector<std::string> values) {
  if (values.size() != family.labels_.size())
    throw std::logic_error("metric " + family.name_ + ": " + std::to_string(values.size()) + " label values for " +
                           std::to_string(family.labels_.size()) + " labels");
  auto& slot = family.series_[values];
  if (!slot) {
    slot = std::make_unique<PerWorker<Counter>>(workers_);
    // The family outlives its series: a build that made the family undoes the
    // series first (undo runs newest first).
    made([&family, values] { family.series_.erase(values); });
  }
  return slot.get();
}

std::uint64_t Stats::counter_value(std::string_view family, const std::vector<std::string>& values) const {
  const auto f = families_.find(family);
  if (f == families_.end()) return 0;
  const auto s = f->second->series_.find(values);
  if (s == f->second->series_.end()) return 0;
  std::uint64_t total = 0;
  for (unsigned w = 0; w < s->second->size(); ++w) total += (*s->second)[w].value();
  return total;
}

GaugeFamily& Stats::gauge_family(std::string_view name, std::string_view help, std::vector<std::string> labels) {
  auto it = gauge_families_.find(name);
  if (it != gauge_families_.end()) {
    if (it->second->labels_ != labels) throw std::logic_error("metric " + std::string(name) + " declared with other labels");
    return *it->second;
  }
  it = gauge_families_
           .emplace(std::string(name),
                    std::make_unique<GaugeFamily>(std::string(name), std::string(help), std::move(labels)))
           .first;
  made([this, key = std::string(name)] { gauge_families_.erase(key); });
  return *it->second;
}

std::atomic<std::int64_t>* Stats::gauge(GaugeFamily& family, std::vector<std::string> values) {
  if (values.size() != family.labels_.size())
    throw std::logic_error("metric " + family.name_ + ": wrong number of label values");
  auto& slot = family.series_[values];
  if (!slot) {
    slot = std::make_unique<std::atomic<std::int64_t>>(0);
    made([&family, values] { family.series_.erase(values); });
  }
  return slot.get();
}

std::int64_t Stats::gauge_value(std::string_view family, const std::vector<std::string>& values) const {
  const auto f = gauge_families_.find(family);
  if (f == gauge_families_.end()) return 0;
  const auto s = f->second->series_.find(values);
  return s == f->second->series_.end() ? 0 : s->second->load(std::memory_order_relaxed);
}

void Stats::made(std::function<void()> undo) {
  if (building_) undo_.push_back(std::move(undo));
}

void Stats::begin_build() {
  building_ = true;
  undo_.clear();
}

void Stats::commit_build() {
  building_ = false;
  undo_.clear();
}

void Stats::abort_build() {
  building_ = false;
  for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) (*it)();
  undo_.clear();
}

PerWorker<Counter>* AuthorityStats::find_or_add(std::string_view authority, std::size_t limit) {
  std::lock_guard lock(mutex_);
  if (auto it = series_.find(authority); it != series_.end()) return it->second.get();
  if (series_.size() < limit)
    return series_.emplace(std::string(authority), std::make_unique<PerWorker<Counter>>(workers_)).first->second.get();
  if (!other_) other_ = std::make_unique<PerWorker<Counter>>(workers_);
  return other_.get();
}

void AuthorityStats::for_each(const std::function<void(const std::string&, std::uint64_t)>& f) const {
  std::lock_guard lock(mutex_);
  auto total = [](const PerWorker<Counter>& w) {
    std::uint64_t n = 0;
    for (unsigned i = 0; i < w.size(); ++i) n += w[i].value();
    return n;
  };
  for (const auto& [name, series] : series_) f(name, total(*series));
  if (other_) f("other", total(*other_));
}

void Stats::count_reload(bool success) { (success ? reloads_ok_ : reloads_failed_).fetch_add(1); }

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(std::string name, std::string help, MetricType type) {
  return MetricFamily{std::move(name), std::move(help), type, {}};
}

ClientMetric with_labels(std::initializer_list<std::pair<const char*, std::string_view>> labels) {
  ClientMetric m;
  for (const auto& [k, v] : labels) m.label.push_back({k, std::string(v)});
  return m;
}

template <class Slice, class F>
auto sum(const PerWorker<Slice>& w, F&& f) {
  decltype(f(w[0])) total{};
  for (unsigned i = 0; i < w.size(); ++i) total += f(w[i]);
  return total;
}

// One histogram series summed over the workers; `of` picks the histogram.
template <class Slice, class F>
void fill_histogram(ClientMetric& m, const PerWorker<Slice>& w, F&& of) {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= Histogram::kBoundsSeconds.size(); ++i) {
    cumulative += sum(w, [&](const Slice& s) { return of(s).bucket(i); });
    const double bound = i < Histogram::kBoundsSeconds.size() ? Histogram::kBoundsSeconds[i]
                                                               : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back({cumulative, bound});
  }
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = static_cast<double>(sum(w, [&](const Slice& s) { return of(s).sum_micros(); })) / 1e6;
}

struct ProcessInfo {
  double cpu_seconds = 0;
  double resident_bytes = 0;
  double open_fds = 0;
};

ProcessInfo read_process_info() {
  ProcessInfo p;
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    p.cpu_seconds = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                    static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  }
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  if (statm >> pages_total >> pages_resident) {
    p.resident_bytes = static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
  }
  // Counting /proc/self/fd entries is cheap enough for a scrape.
  std::error_code ec;
  std::size_t fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++fds;
  p.open_fds = static_cast<double>(fds);
  return p;
}

// Overload: what was refused and shed, and how close the load is to the limits.
void scrape_overload(std::vector<MetricFamily>& out,
                     const std::map<std::string, std::unique_ptr<ListenerStats>, std::less<>>& listeners,
                     const OverloadState& o) {
  auto refused = family("outrigger_downstream_connections_refused_total",
                        "Client connections closed at accept without being read, by the limit that was reached: "
                        "max_downstream_connections (the process's), max_connections (the listener's).",
                        MetricType::Counter);
  auto shed = family("outrigger_overload_shed_requests_total",
                     "Requests answered 503 (x-outrigger-error: overload) before any other work, by the limit "
                     "that was reached: max_requests_per_worker.",
                     MetricType::Counter);
  for (const auto& [name, l] : listeners) {
    for (std::size_t i = 0; i < kConnectionRefusalNames.size(); ++i) {
      auto m = with_labels({{"direction", l->direction}, {"listener", l->name}, {"reason", kConnectionRefusalNames[i]}});
      m.counter.value =
          static_cast<double>(sum(l->workers, [&](const ListenerSlice& s) { return s.connections_refused[i].value(); }));
      refused.metric.push_back(std::move(m));
    }
    auto m = with_labels({{"direction", l->direction}, {"listener", l->name}, {"reason", "max_requests_per_worker"}});
    m.counter.value = static_cast<double>(sum(l->workers, [](const ListenerSlice& s) { return s.shed_requests.value(); }));
    shed.metric.push_back(std::move(m));
  }
  out.push_back(std::move(refused));
  out.push_back(std::move(shed));
  auto gauge = [&](const char* name, const char* help, double v) {
    auto f = family(name, help, MetricType::Gauge);
    ClientMetric m;
    m.gauge.value = v;
    f.metric.push_back(std::move(m));
    out.push_back(std::move(f));
  };
  const auto relaxed = std::memory_order_relaxed;
  gauge("outrigger_overload_downstream_connections",
        "Client connections open on every listener but the admin's: what max_downstream_connections limits.",
        static_cast<double>(o.downstream_connections.load(relaxed)));
  gauge("outrigger_overload_max_downstream_connections", "The limit in force; 0: none.",
        static_cast<double>(o.max_downstream_connections.load(relaxed)));
  gauge("outrigger_overload_max_requests_per_worker", "The limit in force; 0: none.",
        static_cast<double>(o.max_requests_per_worker.load(relaxed)));
  auto in_flight = family("outrigger_overload_requests_in_flight",
                          "Requests (HTTP/1.1 exchanges, HTTP/2 streams) in flight, by worker: what "
                          "max_requests_per_worker limits.",
                          MetricType::Gauge);
  for (unsigned w = 0; w < o.requests_in_flight.size(); ++w) {
    auto m = with_labels({{"worker", std::to_string(w)}});
    m.gauge.value = static_cast<double>(o.requests_in_flight[w].value());
    in_flight.metric.push_back(std::move(m));
  }
  out.push_back(std::move(in_flight));
}

}  // namespace

std::string Stats::scrape() const {
  std::vector<MetricFamily> out;

  auto requests = family("outrigger_requests_total", "Downstream requests answered, by response status code.",
                         MetricType::Counter);
  auto duration = family("outrigger_request_duration_seconds",
                         "Time from the first byte of a request to the last byte of its response.",
                         MetricType::Histogram);
  auto rx_bytes = family("outrigger_request_body_bytes_total", "Request body bytes received from clients.",
                         MetricType::Counter);
  auto tx_bytes = family("outrigger_response_body_bytes_total", "Response body bytes sent to clients.",
                         MetricType::Counter);
  auto grpc = family("outrigger_grpc_requests_total", "gRPC requests answered, by grpc-status.", MetricType::Counter);
  for (const auto& [key, r] : routes_) {
    for (int code = RouteSlice::kMinCode; code <= RouteSlice::kMaxCode; ++code) {
      const auto n = sum(r->workers, [&](const RouteSlice& s) {
        return s.responses[static_cast<std::size_t>(code - RouteSlice::kMinCode)].value();
      });
      if (n == 0) continue;
      auto m = with_labels({{"direction", r->direction},
                            {"listener", r->listener},
                            {"route", r->route},
                            {"cluster", r->cluster},
                            {"code", std::to_string(code)}});
      m.counter.value = static_cast<double>(n);
      requests.metric.push_back(std::move(m));
    }
    for (std::size_t code = 0; code < RouteSlice{}.grpc.size(); ++code) {
      const auto n = sum(r->workers, [&](const RouteSlice& s) { return s.grpc[code].value(); });
      if (n == 0) continue;
      auto m = with_labels({{"direction", r->direction},
                            {"listener", r->listener},
                            {"route", r->route},
                            {"cluster", r->cluster},
                            {"grpc_status", std::to_string(code)}});
      m.counter.value = static_cast<double>(n);
      grpc.metric.push_back(std::move(m));
    }
    auto m = with_labels(
        {{"direction", r->direction}, {"listener", r->listener}, {"route", r->route}, {"cluster", r->cluster}});
    auto rx = m, tx = m;
    fill_histogram(m, r->workers, [](const RouteSlice& s) -> const Histogram& { return s.duration; });
    duration.metric.push_back(std::move(m));
    rx.counter.value = static_cast<double>(sum(r->workers, [](const RouteSlice& s) { return s.bytes_received.value(); }));
    tx.counter.value = static_cast<double>(sum(r->workers, [](const RouteSlice& s) { return s.bytes_sent.value(); }));
    rx_bytes.metric.push_back(std::move(rx));
    tx_bytes.metric.push_back(std::move(tx));
  }
  out.push_back(std::move(requests));
  out.push_back(std::move(duration));
  out.push_back(std::move(rx_bytes));
  out.push_back(std::move(tx_bytes));
  out.push_back(std::move(grpc));

  auto dc_active = family("outrigger_downstream_connections_active", "Open client connections.", MetricType::Gauge);
  auto dc_total =
      family("outrigger_downstream_connections_total", "Client connections accepted.", MetricType::Counter);
  auto bad = family("outrigger_downstream_bad_requests_total",
                    "Requests refused by the codec: malformed (400), too large (431), too slow (408).",
                    MetricType::Counter);
  for (const auto& [name, l] : listeners_) {
    auto m = with_labels({{"direction", l->direction}, {"listener", l->name}});
    auto b = m;
    b.counter.value = static_cast<double>(sum(l->workers, [](const ListenerSlice& s) { return s.bad_requests.value(); }));
    bad.metric.push_back(std::move(b));
    const auto active = sum(l->workers, [](const ListenerSlice& s) { return s.connections_active.value(); });
    const auto active_tls = sum(l->workers, [](const ListenerSlice& s) { return s.tls_connections_active.value(); });
    const auto total = sum(l->workers, [](const ListenerSlice& s) { return s.connections_total.value(); });
    const auto total_tls = sum(l->workers, [](const ListenerSlice& s) { return s.tls_connections_total.value(); });
    for (const bool tls : {false, true}) {
      auto a = with_labels({{"direction", l->direction}, {"listener", l->name}, {"tls", tls ? "true" : "false"}});
      auto t = a;
      a.gauge.value = static_cast<double>(tls ? active_tls : active - active_tls);
      t.counter.value = static_cast<double>(tls ? total_tls : total - total_tls);
      dc_active.metric.push_back(std::move(a));
      dc_total.metric.push_back(std::move(t));
    }
  }

  for (const auto& [name, f] : families_) {
    auto mf = family(f->name_, f->help_, MetricType::Counter);
    for (const auto& [values, series] : f->series_) {
      ClientMetric m;
      for (std::size_t i = 0; i < values.size(); ++i) m.label.push_back({f->labels_[i], values[i]});
      m.counter.value = static_cast<double>(sum(*series, [](const Counter& c) { return c.value(); }));
      mf.metric.push_back(std::move(m));
    }
    out.push_back(std::move(mf));
  }

  for (const auto& [name, f] : gauge_families_) {
    auto mf = family(f->name_, f->help_, MetricType::Gauge);
    for (const auto& [values, series] : f->series_) {
      ClientMetric m;
      for (std::size_t i = 0; i < values.size(); ++i) m.label.push_back({f->labels_[i], values[i]});
      m.gauge.value = static_cast<double>(series->load(std::memory_order_relaxed));
      mf.metric.push_back(std::move(m));
    }
    out.push_back(std::move(mf));
  }

  auto by_protocol = family("outrigger_downstream_requests_total",
                            "Requests (HTTP/2: streams) that clients started, by protocol: http1, http2.",
                            MetricType::Counter);
  for (const auto& [name, l] : listeners_) {
    for (std::size_t i = 0; i < kHttpProtocolNames.size(); ++i) {
      auto m = with_labels({{"direction", l->direction}, {"listener", l->name}, {"protocol", kHttpProtocolNames[i]}});
      m.counter.value = static_cast<double>(sum(l->workers, [&](const ListenerSlice& s) { return s.requests[i].value(); }));
      by_protocol.metric.push_back(std::move(m));
    }
  }
  out.push_back(std::move(by_protocol));

  auto detections = family("outrigger_protocol_detections_total",
                           "Connections whose protocol was detected, by result: http1, http2, tls, tcp, timeout "
                           "(nothing sent within detect_timeout: TCP), opaque_port (TCP without looking).",
                           MetricType::Counter);
  auto detect_time = family("outrigger_protocol_detection_duration_seconds",
                            "Time from accept to the detection's verdict.", MetricType::Histogram);
  auto passthrough = family("outrigger_passthrough_connections_total",
                            "Connections to an original destination in no cluster, by decision: allowed, denied.",
                            MetricType::Counter);
  auto tunnels = family("outrigger_tunnels_total",
                        "Tunnels opened, by kind: tcp, tls_passthrough, upgrade (101 or extended CONNECT).",
                        MetricType::Counter);
  auto tunnels_active = family("outrigger_tunnels_active", "Open tunnels, by kind.", MetricType::Gauge);
  auto tunnel_rx = family("outrigger_tunnel_received_bytes_total", "Tunnel bytes received from clients.",
                          MetricType::Counter);
  auto tunnel_tx = family("outrigger_tunnel_sent_bytes_total", "Tunnel bytes sent to clients.", MetricType::Counter);
  auto tunnel_idle = family("outrigger_tunnel_idle_timeouts_total", "Tunnels closed by tunnel_idle_timeout.",
                            MetricType::Counter);
  auto tunnel_refused = family("outrigger_tunnel_refused_total",
                               "Tunnels that found no upstream (connect failure, limits, passthrough denied, RBAC).",
                               MetricType::Counter);
  auto tunnel_time = family("outrigger_tunnel_duration_seconds", "How long tunnels stayed open, by kind.",
                            MetricType::Histogram);
  for (const auto& entry : listeners_) {
    const auto& l = entry.second;  // named: lambdas capture it (clang 14 cannot capture a binding)
    for (std::size_t i = 0; i < kDetectResultNames.size(); ++i) {
      auto m = with_labels({{"direction", l->direction}, {"listener", l->name}, {"result", kDetectResultNames[i]}});
      m.counter.value = static_cast<double>(sum(l->workers, [&](const ListenerSlice& s) { return s.detections[i].value(); }));
      detections.metric.push_back(std::move(m));
    }
    auto d = with_labels({{"direction", l->direction}, {"listener", l->name}});
    fill_histogram(d, l->workers, [](const ListenerSlice& s) -> const Histogram& { return s.detection_duration; });
    detect_time.metric.push_back(std::move(d));
    for (const bool allowed : {true, false}) {
      auto m = with_labels({{"direction", l->direction}, {"listener", l->name}, {"decision", allowed ? "allowed" : "denied"}});
      m.counter.value = static_cast<double>(sum(l->workers, [&](const ListenerSlice& s) {
        return allowed ? s.passthrough_allowed.value() : s.passthrough_denied.value();
      }));
      passthrough.metric.push_back(std::move(m));
    }
    for (std::size_t k = 0; k < kTunnelKindNames.size(); ++k) {
      const auto labels = with_labels({{"direction", l->direction}, {"listener", l->name}, {"kind", kTunnelKindNames[k]}});
      auto counter = [&](MetricFamily& f, auto of) {
        auto m = labels;
        m.counter.value = static_cast<double>(sum(l->workers, [&](const ListenerSlice& s) { return of(s.tunnels[k]).value(); }));
        f.metric.push_back(std::move(m));
      };
      counter(tunnels, [](const TunnelSlice& t) -> const Counter& { return t.total; });
      counter(tunnel_rx, [](const TunnelSlice& t) -> const Counter& { return t.received; });
      counter(tunnel_tx, [](const TunnelSlice& t) -> const Counter& { return t.sent; });
      counter(tunnel_idle, [](const TunnelSlice& t) -> const Counter& { return t.idle_timeouts; });
      counter(tunnel_refused, [](const TunnelSlice& t) -> const Counter& { return t.refused; });
      auto a = labels;
      a.gauge.value = static_cast<double>(sum(l->workers, [&](const ListenerSlice& s) { return s.tunnels[k].active.value(); }));
      tunnels_active.metric.push_back(std::move(a));
      auto h = labels;
      fill_histogram(h, l->workers, [&](const ListenerSlice& s) -> const Histogram& { return s.tunnels[k].duration; });
      tunnel_time.metric.push_back(std::move(h));
    }
  }
  for (auto* f : {&detections, &detect_time, &passthrough, &tunnels, &tunnels_active, &tunnel_rx, &tunnel_tx,
                  &tunnel_idle, &tunnel_refused, &tunnel_time})
    out.push_back(std::move(*f));

  auto h2_active = family("outrigger_http2_connections_active", "Open HTTP/2 connections, by side.", MetricType::Gauge);
  auto h2_total = family("outrigger_http2_connections_total", "HTTP/2 connections made, by side.", MetricType::Counter);
  auto h2_events = family("outrigger_http2_events_total",
                          "What HTTP/2 connections went through, by side and event: GOAWAY and RST_STREAM sent and "
                          "received, and each abuse limit that ended a stream or a connection (docs/metrics.md).",
                          MetricType::Counter);
  auto http2_series = [&](std::string_view side, std::string_view listener, std::string_view cluster,
                          const auto& workers, auto slice) {
    const auto total = sum(workers, [&](const auto& s) { return slice(s).connections_total.value(); });
    if (total == 0) return;
    auto a = with_labels({{"side", std::string(side)}, {"listener", std::string(listener)}, {"cluster", std::string(cluster)}});
    auto t = a;
    a.gauge.value = static_cast<double>(sum(workers, [&](const auto& s) { return slice(s).connections_active.value(); }));
    t.counter.value = static_cast<double>(total);
    h2_active.metric.push_back(std::move(a));
    h2_total.metric.push_back(std::move(t));
    for (std::size_t i = 0; i < kHttp2EventNames.size(); ++i) {
      auto e = with_labels({{"side", std::string(side)},
                            {"listener", std::string(listener)},
                            {"cluster", std::string(cluster)},
                            {"event", std::string(kHttp2EventNames[i])}});
      e.counter.value = static_cast<double>(sum(workers, [&](const auto& s) { return slice(s).events[i].value(); }));
      h2_events.metric.push_back(std::move(e));
    }
  };
  for (const auto& [name, l] : listeners_)
    http2_series("downstream", l->name, "", l->workers, [](const ListenerSlice& s) -> const Http2Slice& { return s.http2; });
  for (const auto& [name, c] : clusters_)
    http2_series("upstream", "", c->name, c->workers, [](const ClusterSlice& s) -> const Http2Slice& { return s.http2; });
  out.push_back(std::move(h2_active));
  out.push_back(std::move(h2_total));
  out.push_back(std::move(h2_events));

  auto handshakes = family("outrigger_tls_handshakes_total", "TLS handshakes completed, by side.",
                           MetricType::Counter);
  auto handshake_failures = family("outrigger_tls_handshake_failures_total",
                                   "TLS handshakes that failed, by side and reason: no_client_cert, unknown_ca, "
                                   "expired, identity_mismatch, protocol.",
                                   MetricType::Counter);
  for (const auto& [name, l] : listeners_) {
    const auto done = sum(l->workers, [](const ListenerSlice& s) { return s.tls_handshakes.value(); });
    std::array<std::uint64_t, kTlsFailureNames.size()> failed{};
    for (std::size_t i = 0; i < failed.size(); ++i)
      failed[i] = sum(l->workers, [&](const ListenerSlice& s) { return s.tls_failures[i].value(); });
    if (done == 0 && std::all_of(failed.begin(), failed.end(), [](auto n) { return n == 0; })) continue;
    auto h = with_labels({{"side", "downstream"}, {"listener", l->name}, {"cluster", ""}});
    h.counter.value = static_cast<double>(done);
    handshakes.metric.push_back(std::move(h));
    for (std::size_t i = 0; i < failed.size(); ++i) {
      auto f = with_labels(
          {{"side", "downstream"}, {"listener", l->name}, {"cluster", ""}, {"reason", kTlsFailureNames[i]}});
      f.counter.value = static_cast<double>(failed[i]);
      handshake_failures.metric.push_back(std::move(f));
    }
  }
  for (const auto& [name, c] : clusters_) {
    const auto done = sum(c->workers, [](const ClusterSlice& s) { return s.tls_handshakes.value(); });
    std::array<std::uint64_t, kTlsFailureNames.size()> failed{};
    for (std::size_t i = 0; i < failed.size(); ++i)
      failed[i] = sum(c->workers, [&](const ClusterSlice& s) { return s.tls_failures[i].value(); });
    if (done == 0 && std::all_of(failed.begin(), failed.end(), [](auto n) { return n == 0; })) continue;
    auto h = with_labels({{"side", "upstream"}, {"listener", ""}, {"cluster", c->name}});
    h.counter.value = static_cast<double>(done);
    handshakes.metric.push_back(std::move(h));
    for (std::size_t i = 0; i < failed.size(); ++i) {
      auto f = with_labels({{"side", "upstream"}, {"listener", ""}, {"cluster", c->name}, {"reason", kTlsFailureNames[i]}});
      f.counter.value = static_cast<double>(failed[i]);
      handshake_failures.metric.push_back(std::move(f));
    }
  }
  auto expiry = family("outrigger_tls_cert_expiry_timestamp_seconds",
                       "When the certificate Outrigger presents expires (a listener's serving certificate, or a "
                       "cluster's client certificate), in seconds since the Unix epoch.",
                       MetricType::Gauge);
  auto tls_reloads = family("outrigger_tls_reloads_total",
                            "Reloads of changed certificate, key or CA files, by result (a failed one keeps the old "
                            "material serving).",
                            MetricType::Counter);
  for (const auto& [key, t] : tls_) {
    if (t->cert_not_after > 0) {
      auto e = with_labels({{"listener", t->listener}, {"cluster", t->cluster}});
      e.gauge.value = static_cast<double>(t->cert_not_after);
      expiry.metric.push_back(std::move(e));
    }
    auto ok = with_labels({{"listener", t->listener}, {"cluster", t->cluster}, {"result", "success"}});
    auto bad_reload = with_labels({{"listener", t->listener}, {"cluster", t->cluster}, {"result", "failure"}});
    ok.counter.value = static_cast<double>(t->reloads_ok);
    bad_reload.counter.value = static_cast<double>(t->reloads_failed);
    tls_reloads.metric.push_back(std::move(ok));
    tls_reloads.metric.push_back(std::move(bad_reload));
  }
  out.push_back(std::move(handshakes));
  out.push_back(std::move(handshake_failures));
  out.push_back(std::move(expiry));
  out.push_back(std::move(tls_reloads));
  auto authority = family("outrigger_authority_requests_total",
                          "Requests by the authority (Host) clients asked for, on listeners with max_authorities; "
                          "authorities past the cap count as \"other\".",
                          MetricType::Counter);
  for (const auto& entry : listeners_) {
    const auto& l = entry.second;  // named: the lambda captures it
    l->authorities.for_each([&](const std::string& host, std::uint64_t n) {
      auto m = with_labels({{"direction", l->direction}, {"listener", l->name}, {"authority", host}});
      m.counter.value = static_cast<double>(n);
      authority.metric.push_back(std::move(m));
    });
  }
  out.push_back(std::move(authority));
  out.push_back(std::move(dc_active));
  out.push_back(std::move(dc_total));
  out.push_back(std::move(bad));
  scrape_overload(out, listeners_, overload_);

  auto uc_active = family("outrigger_upstream_connections_active", "Open connections to upstream endpoints.",
                          MetricType::Gauge);
  auto uc_total =
      family("outrigger_upstream_connections_total", "Connections opened to upstream endpoints.", MetricType::Counter);
  auto uc_fail = family("outrigger_upstream_connect_failures_total",
                        "Connection attempts to upstream endpoints that failed or timed out.", MetricType::Counter);
  auto uc_rq = family("outrigger_upstream_requests_total", "Requests sent to upstream endpoints.", MetricType::Counter);
  for (const auto& [name, c] : clusters_) {
    auto m = with_labels({{"cluster", c->name}});
    auto a = m, t = m, f = m, r = m;
    a.gauge.value = static_cast<double>(sum(c->workers, [](const ClusterSlice& s) { return s.connections_active.value(); }));
    t.counter.value = static_cast<double>(sum(c->workers, [](const ClusterSlice& s) { return s.connections_total.value(); }));
    f.counter.value = static_cast<double>(sum(c->workers, [](const ClusterSlice& s) { return s.connect_failures.value(); }));
    r.counter.value = static_cast<double>(sum(c->workers, [](const ClusterSlice& s) { return s.requests.value(); }));
    uc_active.metric.push_back(std::move(a));
    uc_total.metric.push_back(std::move(t));
    uc_fail.metric.push_back(std::move(f));
    uc_rq.metric.push_back(std::move(r));
  }
  out.push_back(std::move(uc_active));
  out.push_back(std::move(uc_total));
  out.push_back(std::move(uc_fail));
  out.push_back(std::move(uc_rq));

  auto overflow = family("outrigger_upstream_overflow_total",
                         "Requests refused (503 overflow) because a circuit-breaker threshold was reached.",
                         MetricType::Counter);
  auto rq_active = family("outrigger_upstream_requests_active",
                          "Requests in flight to the cluster, all workers (counts against max_requests).",
                          MetricType::Gauge);
  auto rq_pending = family("outrigger_upstream_requests_pending",
                           "Requests waiting for a connection slot (counts against max_pending_requests).",
                           MetricType::Gauge);
  for (const auto& [name, c] : clusters_) {
    const std::pair<const char*, Counter ClusterSlice::*> limits[] = {
        {"max_connections", &ClusterSlice::overflow_connections},
        {"max_pending_requests", &ClusterSlice::overflow_pending},
        {"max_requests", &ClusterSlice::overflow_requests},
        {"max_retries", &ClusterSlice::overflow_retries}};
    for (const auto& [limit, field] : limits) {
      const auto member = field;  // named: the lambda captures it
      auto m = with_labels({{"cluster", c->name}, {"limit", limit}});
      m.counter.value = static_cast<double>(sum(c->workers, [&](const ClusterSlice& s) { return (s.*member).value(); }));
      overflow.metric.push_back(std::move(m));
    }
    auto a = with_labels({{"cluster", c->name}});
    auto p = a;
    a.gauge.value = static_cast<double>(c->load.requests.load(std::memory_order_relaxed));
    p.gauge.value = static_cast<double>(c->load.pending.load(std::memory_order_relaxed));
    rq_active.metric.push_back(std::move(a));
    rq_pending.metric.push_back(std::move(p));
  }
  out.push_back(std::move(overflow));

  auto retries = family("outrigger_upstream_rq_retry_total",
                        "Retries: sent (attempt), requests that succeeded after one (success), retries the budget "
                        "refused (budget_exhausted).",
                        MetricType::Counter);
  auto timeouts = family("outrigger_upstream_rq_timeout_total", "Per-try and route timeouts.", MetricType::Counter);
  for (const auto& [name, c] : clusters_) {
    const std::pair<const char*, Counter ClusterSlice::*> results[] = {
        {"attempt", &ClusterSlice::retries},
        {"success", &ClusterSlice::retries_succeeded},
        {"budget_exhausted", &ClusterSlice::retries_budget_exhausted}};
    for (const auto& [result, field] : results) {
      const auto member = field;  // named: the lambda captures it
      auto m = with_labels({{"cluster", c->name}, {"result", result}});
      m.counter.value = static_cast<double>(sum(c->workers, [&](const ClusterSlice& s) { return (s.*member).value(); }));
      retries.metric.push_back(std::move(m));
    }
    auto t = with_labels({{"cluster", c->name}});
    t.counter.value = static_cast<double>(sum(c->workers, [](const ClusterSlice& s) { return s.timeouts.value(); }));
    timeouts.metric.push_back(std::move(t));
  }
  out.push_back(std::move(retries));
  out.push_back(std::move(timeouts));

  auto tries = family("outrigger_upstream_rq_duration_seconds",
                      "Each try sent to the cluster: from taking a connection to the end of the response (or the failure).",
                      MetricType::Histogram);
  for (const auto& [name, c] : clusters_) {
    auto m = with_labels({{"cluster", c->name}});
    fill_histogram(m, c->workers, [](const ClusterSlice& s) -> const Histogram& { return s.try_duration; });
    tries.metric.push_back(std::move(m));
  }
  out.push_back(std::move(tries));

  auto breaker = family("outrigger_breaker_state",
                        "The cluster's classic breaker: 0 closed, 1 open, 2 half-open (0 when none is configured).",
                        MetricType::Gauge);
  for (const auto& [name, c] : clusters_) {
    auto m = with_labels({{"cluster", c->name}});
    m.gauge.value = c->load.breaker.state.load(std::memory_order_relaxed);
    breaker.metric.push_back(std::move(m));
  }
  out.push_back(std::move(breaker));
  auto opened = family("outrigger_breaker_opened_total", "Times the cluster's classic breaker opened.",
                       MetricType::Counter);
  for (const auto& [name, c] : clusters_) {
    auto m = with_labels({{"cluster", c->name}});
    m.counter.value = static_cast<double>(c->load.breaker.opened_total.load(std::memory_order_relaxed));
    opened.metric.push_back(std::move(m));
  }
  out.push_back(std::move(opened));

  auto ejections = family("outrigger_outlier_ejections_total",
                          "Endpoints ejected by outlier detection (consecutive errors).", MetricType::Counter);
  auto healthy = family("outrigger_endpoint_healthy",
                        "1 when the endpoint takes traffic: its health check passes and it is not ejected.",
                        MetricType::Gauge);
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  for (const auto& [name, c] : clusters_) {
    auto m = with_labels({{"cluster", c->name}});
    m.counter.value = static_cast<double>(c->load.ejections_total.load(std::memory_order_relaxed));
    ejections.metric.push_back(std::move(m));
    if (!c->endpoints) continue;
    for (std::size_t i = 0; i < c->endpoints->names.size(); ++i) {
      auto e = with_labels({{"cluster", c->name}, {"endpoint", c->endpoints->names[i]}});
      e.gauge.value = c->endpoints->data[i].available(now_ms) ? 1 : 0;
      healthy.metric.push_back(std::move(e));
    }
  }
  out.push_back(std::move(ejections));
  out.push_back(std::move(healthy));
  out.push_back(std::move(rq_active));
  out.push_back(std::move(rq_pending));

  auto dns = family("outrigger_dns_resolutions_total",
                    "Lookups of a DNS cluster's host names, by result: success, empty (no address, or NXDOMAIN), "
                    "failure (no answer; the last addresses keep serving).",
                    MetricType::Counter);
  for (const auto& [name, c] : clusters_) {
    if (!c->dns.load(std::memory_order_relaxed)) continue;
    const std::pair<const char*, const std::atomic<std::uint64_t>*> results[] = {
        {"success", &c->dns_ok}, {"empty", &c->dns_empty}, {"failure", &c->dns_failed}};
    for (const auto& [result, n] : results) {
      auto m = with_labels({{"cluster", c->name}, {"result", result}});
      m.counter.value = static_cast<double>(n->load(std::memory_order_relaxed));
      dns.metric.push_back(std::move(m));
    }
  }
  out.push_back(std::move(dns));

  auto reloads = family("outrigger_config_reloads_total", "Config reloads, by result.", MetricType::Counter);
  auto ok = with_labels({{"result", "success"}});
  ok.counter.value = static_cast<double>(reloads_ok_.load());
  auto failed = with_labels({{"result", "failure"}});
  failed.counter.value = static_cast<double>(reloads_failed_.load());
  reloads.metric.push_back(std::move(ok));
  reloads.metric.push_back(std::move(failed));
  out.push_back(std::move(reloads));

  auto sent = family("outrigger_tracing_spans_sent_total", "Spans the collector accepted.", MetricType::Counter);
  ClientMetric sent_count;
  sent_count.counter.value = static_cast<double>(tracing_.sent.load(std::memory_order_relaxed));
  sent.metric.push_back(std::move(sent_count));
  out.push_back(std::move(sent));
  auto dropped = family("outrigger_tracing_spans_dropped_total",
                        "Spans dropped: queue_full (a worker's queue was full), collector_error (the POST failed).",
                        MetricType::Counter);
  auto full = with_labels({{"reason", "queue_full"}});
  full.counter.value = static_cast<double>(tracing_.dropped_queue_full.load(std::memory_order_relaxed));
  auto collector = with_labels({{"reason", "collector_error"}});
  collector.counter.value = static_cast<double>(tracing_.dropped_collector.load(std::memory_order_relaxed));
  dropped.metric.push_back(std::move(full));
  dropped.metric.push_back(std::move(collector));
  out.push_back(std::move(dropped));

  auto build = family("outrigger_build_info", "Always 1; the labels name the build.", MetricType::Gauge);
  auto b = with_labels({{"version", kVersion}});
  b.gauge.value = 1;
  build.metric.push_back(std::move(b));
  out.push_back(std::move(build));

  const auto p = read_process_info();
  auto gauge = [&](const char* name, const char* help, double v, MetricType t = MetricType::Gauge) {
    auto f = family(name, help, t);
    ClientMetric m;
    (t == MetricType::Counter ? m.counter.value : m.gauge.value) = v;
    f.metric.push_back(std::move(m));
    out.push_back(std::move(f));
  };
  gauge("process_cpu_seconds_total", "User and system CPU time spent, in seconds.", p.cpu_seconds,
        MetricType::Counter);
  gauge("process_resident_memory_bytes", "Resident memory size in bytes.", p.resident_bytes);
  gauge("process_open_fds", "Open file descriptors.", p.open_fds);
  gauge("process_start_time_seconds", "Start time of the process since the Unix epoch, in seconds.",
        static_cast<double>(std::chrono::duration_cast<std::chrono::seconds>(start_time_.time_since_epoch()).count()));

  return prometheus::TextSerializer().Serialize(out);
}

}  // namespace outrigger::observability
