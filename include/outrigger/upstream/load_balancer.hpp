// Picks the endpoint for each request. One per cluster per worker: the state
// (round-robin position, random generator, in-flight counts) is the worker's
// own, so picking takes no lock and touches no shared cache line.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "outrigger/config/config.hpp"
#include "outrigger/core/random.hpp"

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

}  // namespace outrigger::upstream
