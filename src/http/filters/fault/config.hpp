// The `fault` filter (Envoy's envoy.filters.http.fault): delays requests, or
// answers them itself with an error, for a share of the traffic, to test how
// callers cope. A delay suspends the request on a timer of its worker (other
// requests go on) and ends early, with 504, at the route's timeout; an abort
// answers with an HTTP status (x-outrigger-error: fault_abort) or a gRPC
// status (trailers-only) and never reaches the upstream. Clients of a
// listener with trust_request_headers may choose the fault with the
// x-outrigger-fault-* headers where the config says `header: true`
// (http/headers.hpp reads them; nobody else ever sees them). Routes may
// replace the settings or disable the filter (per_filter_config); `headers`
// narrows the faults to requests that match (as a route's match.headers). While
// max_active_faults requests are in a fault, new faults are skipped
// (overflow). Counted in outrigger_fault_injected_total{fault},
// outrigger_fault_overflow_total and the outrigger_fault_active gauge.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "outrigger/core/random.hpp"
#include "outrigger/http/filter.hpp"
#include "outrigger/http/header_match.hpp"
#include "outrigger/observability/stats.hpp"

namespace outrigger::http {

// A share of requests, 0 to 100 percent (fractions allowed), as the cut a
// 64-bit random number must fall under.
class FaultPercent {
 public:
  FaultPercent() = default;
  explicit FaultPercent(double percent);
  double percent() const { return percent_; }
  bool sample(core::Random& random) const { return all_ || (cut_ != 0 && random.next() < cut_); }

 private:
  double percent_ = 100;
  std::uint64_t cut_ = 0;
  bool all_ = true;
};

// One set of fault settings: the listener's, or a route's that replaces it.
struct FaultPolicy {
  struct Delay {
    std::chrono::milliseconds fixed{0};
    bool header = false;  // the delay comes from x-outrigger-fault-delay-request instead
    FaultPercent percent;
  };
  struct Abort {
    int status = 0;        // an HTTP status (200-599), or
    int grpc_status = -1;  // a gRPC status (0-16), or
    bool header = false;   // whichever the x-outrigger-fault-abort-* headers say
    FaultPercent percent;
  };
  std::optional<Delay> delay;
  std::optional<Abort> abort;
  std::uint64_t max_active_faults = 0;  // 0: unlimited
  // Only requests that match all of these (Envoy's `headers`) may get a fault.
  std::vector<HeaderMatcher> headers;
};

struct FaultConfig {
  FaultPolicy policy;
  // Routes whose per_filter_config replaces it (few; looked up by pointer).
  std::vector<std::pair<const config::Route*, FaultPolicy>> routes;
  // Requests in a fault now, all workers: the gauge's series, or own_active
  // without a registry (unit tests).
  std::atomic<std::int64_t>* active = nullptr;
  std::atomic<std::int64_t> own_active{0};
  observability::PerWorker<observability::Counter>* delays = nullptr;  // null in tests without a registry
  observability::PerWorker<observability::Counter>* aborts = nullptr;
  observability::PerWorker<observability::Counter>* overflow = nullptr;

  const FaultPolicy& policy_for(const config::Route* route) const {
    for (const auto& [r, p] : routes)
      if (r == route) return p;
    return policy;
  }
};

// Parses one set of settings (the filter's mapping, or a route's override);
// nullopt when it reported errors.
std::optional<FaultPolicy> parse_fault_policy(const YAML::Node& n, const std::string& path, config::YamlReader& yaml);

std::unique_ptr<FilterFactory> make_fault_factory(const config::FilterSpec& spec, const FilterContext& context,
                                                  config::YamlReader& yaml);

}  // namespace outrigger::http
