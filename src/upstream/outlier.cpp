#include "outrigger/upstream/outlier.hpp"

#include <algorithm>

namespace outrigger::upstream {

bool OutlierDetector::record(std::size_t endpoint, Result result, Clock::time_point now) {
  auto& e = endpoints_.data[endpoint];
  if (result == Result::success) {
    if (e.consecutive_5xx.load(std::memory_order_relaxed)) e.consecutive_5xx.store(0, std::memory_order_relaxed);
    if (e.consecutive_gateway.load(std::memory_order_relaxed)) e.consecutive_gateway.store(0, std::memory_order_relaxed);
    return false;
  }
  const auto errors = e.consecutive_5xx.fetch_add(1, std::memory_order_relaxed) + 1;
  std::uint32_t gateway = 0;
  if (result == Result::gateway_failure) {
    gateway = e.consecutive_gateway.fetch_add(1, std::memory_order_relaxed) + 1;
  } else if (e.consecutive_gateway.load(std::memory_order_relaxed)) {
    e.consecutive_gateway.store(0, std::memory_order_relaxed);  // a plain 5xx breaks a gateway streak
  }
  const bool tripped = (config_.consecutive_5xx && errors >= config_.consecutive_5xx) ||
                       (config_.consecutive_gateway_failure && gateway >= config_.consecutive_gateway_failure);
  if (!tripped) return false;
  e.consecutive_5xx.store(0, std::memory_order_relaxed);
  e.consecutive_gateway.store(0, std::memory_order_relaxed);
  return eject(endpoint, std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
}

bool OutlierDetector::eject(std::size_t endpoint, std::int64_t now_ms) {
  auto& e = endpoints_.data[endpoint];
  auto until = e.ejected_until_ms.load();
  if (until > now_ms) return false;  // already out

  // Never more than max_ejection_percent of the cluster out at once, but one
  // endpoint may always go.
  const std::size_t n = endpoints_.data.size();
  std::size_t out = 0;
  for (const auto& other : endpoints_.data) out += other.ejected_until_ms.load(std::memory_order_relaxed) > now_ms;
  const std::size_t allowed = std::max<std::size_t>(1, n * config_.max_ejection_percent / 100);
  if (config_.max_ejection_percent == 0 || out >= allowed) return false;

  // The multiplier decays by one per interval spent back in service.
  std::uint32_t times = e.ejections.load(std::memory_order_relaxed);
  if (times > 0 && until > 0) {
    const auto decay = static_cast<std::uint64_t>((now_ms - until) / config_.interval.count());
    times = decay >= times ? 0 : times - static_cast<std::uint32_t>(decay);
  }
  ++times;
  const auto cap = std::max(config_.base_ejection_time, config_.max_ejection_time);
  const auto duration = std::min<std::int64_t>(config_.base_ejection_time.count() * times, cap.count());
  if (!e.ejected_until_ms.compare_exchange_strong(until, now_ms + duration)) return false;  // another worker did
  e.ejections.store(times, std::memory_order_relaxed);
  ejections_total_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

}  // namespace outrigger::upstream
