#include "outrigger/upstream/load_balancer.hpp"

#include <algorithm>

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

}  // namespace outrigger::upstream
