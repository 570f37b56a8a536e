// Picks the endpoint for each request. One per cluster per worker: the state
// (round-robin position, random generator, in-flight counts) is the worker's
// own, so picking takes no lock and touches no shared cache line.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "outrigger/config/config.hpp"
#include "outrigger/core/random.hpp"
#include "outrigger/observability/stats.hpp"

namespace outrigger::upstream {

class LoadBalancer {
 public:
  LoadBalancer(config::LbPolicy policy, std::vector<std::uint32_t> weights, std::uint64_t seed);

  // `active[i]`: requests in flight to endpoint i on this worker.
  std::size_t pick(std::span<const std::uint32_t> active);

  config::LbPolicy policy() const { return policy_; }

 private:
  std::size_t weighted_random();

  config::LbPolicy policy_;
  std::vector<std::uint32_t> weights_;
  std::vector<std::int64_t> current_;  // smooth weighted round robin (as in nginx)
  std::int64_t total_ = 0;
  bool equal_weights_ = true;
  std::size_t next_ = 0;  // plain round robin when all weights are equal
  core::Random random_;
};

// The endpoints one request has tried so far (tries are few).
class TriedEndpoints {
 public:
  bool contains(std::size_t i) const {
    for (std::size_t k = 0; k < n_; ++k)
      if (at_[k] == i) return true;
    return false;
  }
  void add(std::size_t i) {
    if (n_ < at_.size() && !contains(i)) at_[n_++] = static_cast<std::uint32_t>(i);
  }

 private:
  std::array<std::uint32_t, 16> at_{};
  std::size_t n_ = 0;
};

// The endpoint for the next try of a request. The balancer's pick when it
// takes traffic (its health check passes, it is not ejected) and was not
// tried yet, after up to three picks; else the next endpoint in order that
// takes traffic, tried or not. When none takes traffic, one that passes its
// health check: ejection alone never empties a cluster (Envoy's panic
// mode). None when every endpoint fails its health check. `guarded`: the
// cluster has health checks or outlier detection (without, every endpoint
// always takes traffic and the clock is not read). The choice is added to
// `tried`.
std::optional<std::size_t> choose_endpoint(LoadBalancer& balancer, std::span<const std::uint32_t> active,
                                           const observability::EndpointSet& state, bool guarded,
                                           TriedEndpoints& tried);

}  // namespace outrigger::upstream
