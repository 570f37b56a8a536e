#include "outrigger/upstream/breaker.hpp"

namespace outrigger::upstream {

namespace {
std::int64_t ms(CircuitBreaker::Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
constexpr int kClosed = 0, kOpen = 1, kHalfOpen = 2;
}  // namespace

void CircuitBreaker::trip(int from, std::int64_t now_ms) {
  int expected = from;
  if (data_.state.compare_exchange_strong(expected, kOpen)) {
    data_.since_ms.store(now_ms);
    data_.opened_total.fetch_add(1, std::memory_order_relaxed);
  }
}

CircuitBreaker::Admission CircuitBreaker::admit(Clock::time_point now) {
  int s = data_.state.load(std::memory_order_acquire);
  if (s == kClosed) return Admission::allowed;
  const auto now_ms = ms(now);
  auto since = data_.since_ms.load();
  if (s == kOpen) {
    if (now_ms - since < config_.open_duration.count()) return Admission::rejected;
    // Open long enough: the first worker here turns the breaker half-open.
    if (data_.since_ms.compare_exchange_strong(since, now_ms)) {
      data_.probes.store(0);
      data_.probe_successes.store(0);
      data_.state.store(kHalfOpen, std::memory_order_release);
    }
    s = data_.state.load(std::memory_order_acquire);
    since = data_.since_ms.load();
    if (s != kHalfOpen) return s == kClosed ? Admission::allowed : Admission::rejected;
  }
  if (data_.probes.fetch_add(1) < config_.half_open_requests) return Admission::probe;
  // Every probe is out. If they have not all come back within open_duration,
  // some never will: start a fresh round.
  if (now_ms - since >= config_.open_duration.count() && data_.since_ms.compare_exchange_strong(since, now_ms)) {
    data_.probe_successes.store(0);
    data_.probes.store(1);
    return Admission::probe;
  }
  return Admission::rejected;
}

void CircuitBreaker::record(Admission admission, Outcome outcome, Clock::time_point now) {
  const auto now_ms = ms(now);
  if (admission == Admission::probe) {
    if (data_.state.load() != kHalfOpen) return;
    if (outcome == Outcome::ignored) {
      data_.probes.fetch_sub(1);
    } else if (outcome == Outcome::failure) {
      trip(kHalfOpen, now_ms);
    } else if (data_.probe_successes.fetch_add(1) + 1 == config_.half_open_requests) {
      for (auto& slot : data_.slots) slot.second.store(-1);
      int expected = kHalfOpen;
      if (data_.state.compare_exchange_strong(expected, kClosed)) data_.since_ms.store(now_ms);
    }
    return;
  }
  if (admission != Admission::allowed || outcome == Outcome::ignored || data_.state.load() != kClosed) return;

  const std::int64_t second = now_ms / 1000;
  auto& slot = data_.slots[static_cast<std::size_t>(second) % data_.slots.size()];
  if (auto seen = slot.second.load(); seen != second && slot.second.compare_exchange_strong(seen, second)) {
    slot.calls.store(0);
    slot.failures.store(0);
  }
  slot.calls.fetch_add(1);
  if (outcome != Outcome::failure) return;
  slot.failures.fetch_add(1);

  const std::int64_t window = config_.window.count() / 1000;
  std::uint64_t calls = 0, failures = 0;
  for (const auto& s : data_.slots) {
    const auto at = s.second.load();
    if (at >= 0 && second - at < window) {
      calls += s.calls.load();
      failures += s.failures.load();
    }
  }
  if (calls >= config_.minimum_requests &&
      static_cast<double>(failures) >= config_.failure_rate * static_cast<double>(calls))
    trip(kClosed, now_ms);
}

}  // namespace outrigger::upstream
