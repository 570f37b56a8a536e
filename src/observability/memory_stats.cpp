#include "outrigger/observability/memory_stats.hpp"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <vector>

namespace outrigger::observability {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

std::uint64_t MemoryStats::released() const {
  auto of = [](const MemorySlice& s) {
    return s.buffer_pool_released_bytes.value() + s.small_pool_released_bytes.value() + s.idle_connections_purged.value();
  };
  std::uint64_t n = of(main);
  for (unsigned w = 0; w < workers.size(); ++w) n += of(workers[w]);
  return n;
}

std::string MemoryStats::scrape() const {
  // Summed over the workers and the main thread, one series per pool.
  auto total = [&](auto of) {
    double v = static_cast<double>(of(main));
    for (unsigned w = 0; w < workers.size(); ++w) v += static_cast<double>(of(workers[w]));
    return v;
  };
  auto series = [](const char* pool, double v, bool counter) {
    ClientMetric m;
    m.label.push_back({"pool", pool});
    (counter ? m.counter.value : m.gauge.value) = v;
    return m;
  };
  std::vector<MetricFamily> out;
  MetricFamily free{"outrigger_pool_free_bytes",
                    "Bytes held in the per-thread free lists (buffers: 16 KB I/O blocks; small: header-field blocks).",
                    MetricType::Gauge, {}};
  free.metric.push_back(series("buffers", total([](const MemorySlice& s) { return s.buffer_pool_free_bytes.value(); }), false));
  free.metric.push_back(series("small", total([](const MemorySlice& s) { return s.small_pool_free_bytes.value(); }), false));
  MetricFamily released{"outrigger_pool_released_bytes_total",
                        "Bytes the memory sweeps gave back to the allocator from idle free lists.",
                        MetricType::Counter, {}};
  released.metric.push_back(
      series("buffers", total([](const MemorySlice& s) { return s.buffer_pool_released_bytes.value(); }), true));
  released.metric.push_back(
      series("small", total([](const MemorySlice& s) { return s.small_pool_released_bytes.value(); }), true));
  out.push_back(std::move(free));
  out.push_back(std::move(released));
  MetricFamily purged{"outrigger_upstream_idle_purged_total",
                      "Idle upstream keep-alive connections closed by the pools' purge (half of those unused for 5 s).",
                      MetricType::Counter, {}};
  ClientMetric p;
  p.counter.value = total([](const MemorySlice& s) { return s.idle_connections_purged.value(); });
  purged.metric.push_back(std::move(p));
  out.push_back(std::move(purged));

  MetricFamily trim_count{"outrigger_malloc_trims_total",
                          "malloc_trim calls by the main thread's memory sweep (after the pools gave memory back or closed idle connections).",
                          MetricType::Counter, {}};
  ClientMetric t;
  t.counter.value = static_cast<double>(trims.value());
  trim_count.metric.push_back(std::move(t));
  out.push_back(std::move(trim_count));
  MetricFamily seconds{"outrigger_malloc_trim_seconds_total", "Time the main thread spent in malloc_trim.",
                       MetricType::Counter, {}};
  ClientMetric sec;
  sec.counter.value = static_cast<double>(trim_micros.value()) / 1e6;
  seconds.metric.push_back(std::move(sec));
  out.push_back(std::move(seconds));
  return prometheus::TextSerializer().Serialize(out);
}

}  // namespace outrigger::observability
