// Linkerd's retry budget: over a sliding 10-second window, retries may be at
// most `ratio` of the requests plus `min_retries_per_second` (divided among
// the workers; each worker keeps its own window, no shared state).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>

#include "outrigger/config/config.hpp"

namespace outrigger::upstream {

class RetryBudget {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr int kWindowSeconds = 10;

  RetryBudget(const config::RetryBudget& config, unsigned workers)
      : ratio_(config.ratio), floor_(config.min_retries_per_second * kWindowSeconds / std::max(1u, workers)) {}

  void record_request(Clock::time_point now) { slot(now).requests += 1; }

  // Counts a retry and returns true when the budget allows one now.
  bool try_retry(Clock::time_point now) {
    auto& current = slot(now);
    double requests = 0, retries = 0;
    for (const auto& s : slots_) {
      requests += s.requests;
      retries += s.retries;
    }
    if (retries + 1 > ratio_ * requests + floor_) return false;
    current.retries += 1;
    return true;
  }

 private:
  struct Slot {
    std::int64_t second = -1;
    double requests = 0, retries = 0;
  };
  Slot& slot(Clock::time_point now) {
    const auto second = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    auto& s = slots_[static_cast<std::size_t>(second % kWindowSeconds)];
    if (s.second != second) s = Slot{second, 0, 0};
    // Slots older than the window are ignored by try_retry's sum only once they
    // are overwritten; clear them here so a quiet period does not count.
    for (auto& other : slots_)
      if (other.second >= 0 && second - other.second >= kWindowSeconds) other = Slot{};
    return s;
  }

  double ratio_;
  double floor_;
  std::array<Slot, kWindowSeconds> slots_{};
};

}  // namespace outrigger::upstream
