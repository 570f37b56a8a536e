#include "outrigger/upstream/cluster.hpp"

namespace outrigger::upstream {

Cluster::Cluster(std::size_t index, config::Cluster config, std::vector<Endpoint> endpoints,
                 observability::ClusterStats* stats, std::shared_ptr<observability::EndpointSet> endpoint_state)
    : index_(index),
      config_(std::move(config)),
      endpoints_(std::move(endpoints)),
      stats_(stats),
      endpoint_state_(std::move(endpoint_state)),
      admission_(std::make_unique<Admission>(config_, *stats_)) {
  if (config_.outlier_detection)
    outlier_ = std::make_unique<OutlierDetector>(*config_.outlier_detection, *endpoint_state_,
                                                 stats_->load.ejections_total);
}

Cluster::~Cluster() = default;

void Cluster::set_tls(std::shared_ptr<tls::Context> tls) { tls_ = std::move(tls); }

}  // namespace outrigger::upstream
