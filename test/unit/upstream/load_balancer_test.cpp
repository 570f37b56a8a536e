#include "outrigger/upstream/load_balancer.hpp"

#include <gtest/gtest.h>

namespace outrigger::upstream {
namespace {

using config::LbPolicy;

std::vector<int> counts(LoadBalancer& lb, std::size_t n, int picks, std::vector<std::uint32_t> active = {}) {
  if (active.empty()) active.assign(n, 0);
  std::vector<int> c(n, 0);
  for (int i = 0; i < picks; ++i) ++c[lb.pick(active)];
  return c;
}

TEST(LoadBalancer, RoundRobinVisitsEveryEndpointInTurn) {
  LoadBalancer lb(LbPolicy::round_robin, {1, 1, 1}, 7);
  std::vector<std::uint32_t> active(3, 0);
  const auto first = lb.pick(active);
  EXPECT_EQ(lb.pick(active), (first + 1) % 3);
  EXPECT_EQ(lb.pick(active), (first + 2) % 3);
  EXPECT_EQ(lb.pick(active), first);
}

TEST(LoadBalancer, WeightedRoundRobinFollowsWeightsWithoutBursts) {
  LoadBalancer lb(LbPolicy::round_robin, {5, 1, 1}, 7);
  std::vector<std::uint32_t> active(3, 0);
  std::vector<std::size_t> seq;
  for (int i = 0; i < 7; ++i) seq.push_back(lb.pick(active));
  EXPECT_EQ(std::count(seq.begin(), seq.end(), 0u), 5);
  EXPECT_EQ(std::count(seq.begin(), seq.end(), 1u), 1);
  EXPECT_EQ(std::count(seq.begin(), seq.end(), 2u), 1);
  // Smooth: the heavy endpoint never gets more than three in a row.
  int run = 0, longest = 0;
  for (auto s : seq) longest = std::max(longest, run = s == 0 ? run + 1 : 0);
  EXPECT_LE(longest, 3);
}

TEST(LoadBalancer, RandomFollowsWeights) {
  LoadBalancer lb(LbPolicy::random, {3, 1}, 42);
  const auto c = counts(lb, 2, 20000);
  EXPECT_NEAR(c[0] / 20000.0, 0.75, 0.02);
}

TEST(LoadBalancer, LeastRequestPicksTheLessLoadedOfTwo) {
  LoadBalancer lb(LbPolicy::least_request, {1, 1}, 1);
  const auto c = counts(lb, 2, 100, {10, 0});
  EXPECT_EQ(c[1], 100);
}

TEST(LoadBalancer, LeastRequestWeighsLoadByWeight) {
  // Endpoint 0 has 4 in flight but weight 10; endpoint 1 has 1 in flight, weight 1.
  LoadBalancer lb(LbPolicy::least_request, {10, 1}, 1);
  const auto c = counts(lb, 2, 100, {4, 1});
  EXPECT_EQ(c[0], 100);
}

TEST(LoadBalancer, LeastRequestSpreadsWhenIdle) {
  LoadBalancer lb(LbPolicy::least_request, {1, 1, 1, 1}, 3);
  const auto c = counts(lb, 4, 4000);
  for (int n : c) EXPECT_GT(n, 500);
}

TEST(LoadBalancer, OneEndpointIsAlwaysPicked) {
  for (auto policy : {LbPolicy::round_robin, LbPolicy::least_request, LbPolicy::random}) {
    LoadBalancer lb(policy, {1}, 0);
    EXPECT_EQ(counts(lb, 1, 10)[0], 10);
  }
}

}  // namespace
}  // namespace outrigger::upstream

namespace outrigger::upstream {
namespace {

// A DNS cluster whose names have no address (yet) has no endpoint to give.
TEST(ChooseEndpoint, AnEmptyClusterHasNone) {
  LoadBalancer lb(config::LbPolicy::round_robin, {}, 1);
  observability::EndpointSet none({});
  TriedEndpoints tried;
  EXPECT_FALSE(choose_endpoint(lb, {}, none, true, tried));
  EXPECT_FALSE(choose_endpoint(lb, {}, none, false, tried));
}

}  // namespace
}  // namespace outrigger::upstream
