#include "outrigger/upstream/load_balancer.hpp"

#include <algorithm>
#include <chrono>

namespace outrigger::upstream {

LoadBalancer::LoadBalancer(config::LbPolicy policy, std::vector<std::uint32_t> weights, std::uint64_t seed)
    : policy_(policy), weights_(std::move(weights)), current_(weights_.size(), 0), random_(seed) {
  for (auto w : weights_) total_ += w;
  equal_weights_ = std::all_of(weights_.begin(), weights_.end(), [&](auto w) { return w == weights_.front(); });
  // Workers start at different places, so that they do not all hit the first
  // endpoint at once.
  if (!weights_.empty()) next_ = static_cast<std::size_t>(random_.below(weights_.size()));
}

std::size_t LoadBalancer::weighted_random() {
  if (equal_weights_) return static_cast<std::size_t>(random_.below(weights_.size()));
  auto r = static_cast<std::int64_t>(random_.below(static_cast<std::uint64_t>(total_)));
  for (std::size_t i = 0; i < weights_.size(); ++i) {
    r -= weights_[i];
    if (r < 0) return i;
  }
  return weights_.size() - 1;
}

std::size_t LoadBalancer::pick(std::span<const std::uint32_t> active) {
  const std::size_t n = weights_.size();
  if (n <= 1) return 0;
  switch (policy_) {
    case config::LbPolicy::random:
      return weighted_random();
    case config::LbPolicy::least_request: {
      // Power of two choices: two distinct candidates, the less loaded (for
      // its weight) wins; ties go to the first.
      const std::size_t a = weighted_random();
      std::size_t b = weighted_random();
      if (b == a) b = (a + 1 + static_cast<std::size_t>(random_.below(n - 1))) % n;
      const auto load = [&](std::size_t i, std::size_t other) {
        return static_cast<std::uint64_t>(active[i] + 1) * weights_[other];
      };
      return load(b, a) < load(a, b) ? b : a;
    }
    case config::LbPolicy::round_robin:
      break;
  }
  if (equal_weights_) return next_++ % n;
  std::size_t best = 0;
  for (std::size_t i = 0; i < n; ++i) {
    current_[i] += weights_[i];
    if (current_[i] > current_[best]) best = i;
  }
  current_[best] -= total_;
  return best;
}

std::optional<std::size_t> choose_endpoint(LoadBalancer& balancer, std::span<const std::uint32_t> active,
                                           const observability::EndpointSet& state, bool guarded,
                                           TriedEndpoints& tried) {
  const auto& endpoints = state.data;
  const auto now_ms = guarded ? std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::steady_clock::now().time_since_epoch())
                                    .count()
                              : std::int64_t{0};
  if (endpoints.empty()) return std::nullopt;  // a DNS cluster whose names have no address (yet)
  auto fresh = [&](std::size_t i) { return endpoints[i].available(now_ms) && !tried.contains(i); };
  std::size_t index = balancer.pick(active);
  for (int i = 0; i < 3 && !fresh(index); ++i) index = balancer.pick(active);
  if (!endpoints[index].available(now_ms)) {
    std::optional<std::size_t> found;
    for (std::size_t k = 1; k <= endpoints.size() && !found; ++k) {
      const auto j = (index + k) % endpoints.size();
      if (endpoints[j].available(now_ms)) found = j;
    }
    for (std::size_t k = 0; k < endpoints.size() && !found; ++k) {  // panic mode
      const auto j = (index + k) % endpoints.size();
      if (endpoints[j].healthy.load(std::memory_order_relaxed)) found = j;
    }
    if (!found) return std::nullopt;
    index = *found;
  }
  tried.add(index);
  return index;
}

}  // namespace outrigger::upstream
