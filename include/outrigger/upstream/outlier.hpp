// Outlier detection on consecutive errors (Envoy's consecutive_5xx and
// consecutive_gateway_failure): each try's outcome is recorded against its
// endpoint; an endpoint that reaches a threshold is ejected for
// base_ejection_time x its multiplier, unless max_ejection_percent of the
// cluster is out already. The multiplier grows with each ejection and decays
// by one per interval spent back in service. Ejected endpoints return by
// themselves when their time is up: the load balancer compares the deadline
// with the clock, so no timer has to fire.
//
// State lives in observability::EndpointSet, shared by all workers through
// atomics (no lock). A success clears the counters only when they are not
// zero already, so a healthy endpoint costs no shared write.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "outrigger/config/config.hpp"
#include "outrigger/observability/stats.hpp"

namespace outrigger::upstream {

class OutlierDetector {
 public:
  using Clock = std::chrono::steady_clock;
  // gateway_failure: 502, 503, 504, or a failure of the proxy's own (connect
  // failure, reset, timeout); error_5xx: any other 5xx.
  enum class Result { success, error_5xx, gateway_failure };

  OutlierDetector(const config::OutlierDetection& config, observability::EndpointSet& endpoints,
                  std::atomic<std::uint64_t>& ejections_total)
      : config_(config), endpoints_(endpoints), ejections_total_(ejections_total) {}

  // Returns true when this outcome ejected the endpoint.
  bool record(std::size_t endpoint, Result result, Clock::time_point now);
  static Result classify(int status) {
    if (status == 502 || status == 503 || status == 504) return Result::gateway_failure;
    return status >= 500 ? Result::error_5xx : Result::success;
  }

 private:
  bool eject(std::size_t endpoint, std::int64_t now_ms);

  config::OutlierDetection config_;
  observability::EndpointSet& endpoints_;
  std::atomic<std::uint64_t>& ejections_total_;
};

}  // namespace outrigger::upstream
