// A listener's routes compiled for matching: first match wins, in config order.
#pragma once

#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "outrigger/config/config.hpp"
#include "outrigger/core/random.hpp"
#include "outrigger/http/exchange.hpp"
#include "outrigger/http/header_match.hpp"
#include "outrigger/observability/stats.hpp"

namespace outrigger::upstream {
class Cluster;
}

namespace outrigger::router {

// Where a route sends traffic: one cluster, or one of several by weight.
struct RouteTarget {
  std::shared_ptr<const upstream::Cluster> cluster;
  observability::RouteStats* stats = nullptr;  // this route's series for this cluster
  std::uint64_t cumulative_weight = 0;
};

struct CompiledRoute {
  const config::Route* config = nullptr;
  std::vector<RouteTarget> targets;            // empty for a direct response
  std::optional<RouteTarget> fallback;         // a fallback cluster (config->fallback->response is the other kind)
  observability::RouteStats* stats = nullptr;  // series for direct responses (cluster "")
  std::optional<std::regex> path_regex;
  std::vector<http::HeaderMatcher> headers;    // config->match.headers, compiled

  // The target for one request (weighted clusters: at random, by weight).
  const RouteTarget& pick(core::Random& random) const {
    if (targets.size() == 1) return targets.front();
    const auto r = random.below(targets.back().cumulative_weight);
    for (const auto& t : targets)
      if (r < t.cumulative_weight) return t;
    return targets.back();
  }
};

class RouteTable {
 public:
  RouteTable() = default;
  explicit RouteTable(std::vector<CompiledRoute> routes) : routes_(std::move(routes)) {}

  // The first route whose match accepts the request, or null.
  const CompiledRoute* match(const http::RequestMessage& request) const;
  const std::vector<CompiledRoute>& routes() const { return routes_; }

 private:
  std::vector<CompiledRoute> routes_;
};

// Exposed for tests: does host (port stripped, any case) match pattern
// ("example.com" or "*.example.com")?
bool host_matches(std::string_view host, std::string_view pattern);
// The path part of a request target (no query, no fragment).
std::string_view path_of(std::string_view target);

}  // namespace outrigger::router
