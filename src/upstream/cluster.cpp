#include "outrigger/upstream/cluster.hpp"

#include "outrigger/upstream/connection_pool.hpp"

namespace outrigger::upstream {

Cluster::Cluster(config::Cluster config, std::vector<Endpoint> endpoints, observability::ClusterStats* stats,
                 std::vector<std::shared_ptr<ClusterPools>> worker_pools)
    : config_(std::move(config)),
      endpoints_(std::move(endpoints)),
      stats_(stats),
      worker_pools_(std::move(worker_pools)) {
  if (config_.breaker) breaker_ = std::make_unique<CircuitBreaker>(*config_.breaker, stats_->load.breaker);
}

Cluster::~Cluster() = default;

}  // namespace outrigger::upstream
