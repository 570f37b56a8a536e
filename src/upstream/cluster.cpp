#include "outrigger/upstream/cluster.hpp"

#include "outrigger/upstream/connection_pool.hpp"

namespace outrigger::upstream {

Cluster::Cluster(config::Cluster config, std::vector<Endpoint> endpoints, observability::ClusterStats* stats,
                 std::vector<std::shared_ptr<ClusterPools>> worker_pools,
                 std::shared_ptr<observability::EndpointSet> endpoint_state)
    : config_(std::move(config)),
      endpoints_(std::move(endpoints)),
      stats_(stats),
      worker_pools_(std::move(worker_pools)),
      endpoint_state_(std::move(endpoint_state)) {
  if (config_.breaker) breaker_ = std::make_unique<CircuitBreaker>(*config_.breaker, stats_->load.breaker);
  if (config_.outlier_detection)
    outlier_ = std::make_unique<OutlierDetector>(*config_.outlier_detection, *endpoint_state_,
                                                 stats_->load.ejections_total);
}

Cluster::~Cluster() = default;

void Cluster::set_tls(std::shared_ptr<tls::Context> tls) { tls_ = std::move(tls); }

}  // namespace outrigger::upstream
