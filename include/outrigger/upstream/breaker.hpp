// The classic circuit breaker: closed while the failure rate over a sliding
// window stays below the threshold; open (requests rejected at once, without
// touching the upstream) for open_duration once it is reached; then half-open,
// letting half_open_requests probes through: all succeed -> closed, one fails
// -> open again. Probes that never report (the client went away) are given up
// after another open_duration, so the breaker cannot stick half-open.
//
// State lives in observability::BreakerData, shared by all workers through
// atomics (no lock); counts are approximate at second boundaries, which a rate
// over many calls tolerates.
#pragma once

#include <chrono>

#include "outrigger/config/config.hpp"
#include "outrigger/observability/stats.hpp"

namespace outrigger::upstream {

class CircuitBreaker {
 public:
  using Clock = std::chrono::steady_clock;
  enum class State { closed = 0, open = 1, half_open = 2 };
  enum class Admission { allowed, probe, rejected };
  // ignored: the call says nothing about the upstream (the client left, or a
  // local limit answered); a probe that is ignored is handed back.
  enum class Outcome { success, failure, ignored };

  CircuitBreaker(const config::Breaker& config, observability::BreakerData& data) : config_(config), data_(data) {}

  Admission admit(Clock::time_point now);
  // The outcome of an admitted call (allowed or probe).
  void record(Admission admission, Outcome outcome, Clock::time_point now);
  State state() const { return static_cast<State>(data_.state.load(std::memory_order_relaxed)); }
  const config::Breaker& config() const { return config_; }

 private:
  void trip(int from, std::int64_t now_ms);

  config::Breaker config_;
  observability::BreakerData& data_;
};

}  // namespace outrigger::upstream
