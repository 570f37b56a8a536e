// A cluster as one config snapshot sees it: resolved endpoints, its stats,
// and for each worker the pools it uses. Built on the main thread; each
// worker touches only its own slot, so the request path takes no lock.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <string>
#include <vector>

#include "outrigger/config/config.hpp"
#include "outrigger/observability/stats.hpp"
#include "outrigger/upstream/breaker.hpp"
#include "outrigger/tls/context.hpp"
#include "outrigger/upstream/outlier.hpp"

namespace outrigger::upstream {

struct Endpoint {
  std::string name;  // as configured, e.g. "127.0.0.1:8080": logs, access log, /clusters
  boost::asio::ip::tcp::endpoint address;
  std::uint32_t weight = 1;
};

class ClusterPools;

class Cluster {
 public:
  Cluster(config::Cluster config, std::vector<Endpoint> endpoints, observability::ClusterStats* stats,
          std::vector<std::shared_ptr<ClusterPools>> worker_pools,
          std::shared_ptr<observability::EndpointSet> endpoint_state);
  ~Cluster();

  const config::Cluster& config() const { return config_; }
  const std::string& name() const { return config_.name; }
  const std::vector<Endpoint>& endpoints() const { return endpoints_; }
  observability::ClusterStats& stats() const { return *stats_; }
  ClusterPools& pools(unsigned worker) const { return *worker_pools_[worker]; }
  // The classic breaker, when the cluster configures one.
  CircuitBreaker* breaker() const { return breaker_.get(); }
  // Outlier detection, when the cluster configures it.
  OutlierDetector* outlier_detector() const { return outlier_.get(); }
  // Health and ejection of each endpoint, shared by all workers.
  const observability::EndpointSet& endpoint_state() const { return *endpoint_state_; }
  const std::shared_ptr<observability::EndpointSet>& endpoint_state_ptr() const { return endpoint_state_; }
  const std::shared_ptr<ClusterPools>& pools_ptr(unsigned worker) const { return worker_pools_[worker]; }
  // TLS to the endpoints, when the cluster has a `tls` block (else null).
  tls::Context* tls() const { return tls_.get(); }
  const std::shared_ptr<tls::Context>& tls_ptr() const { return tls_; }
  void set_tls(std::shared_ptr<tls::Context> tls);

 private:
  config::Cluster config_;
  std::vector<Endpoint> endpoints_;
  observability::ClusterStats* stats_;
  std::vector<std::shared_ptr<ClusterPools>> worker_pools_;
  std::shared_ptr<observability::EndpointSet> endpoint_state_;
  std::unique_ptr<CircuitBreaker> breaker_;
  std::unique_ptr<OutlierDetector> outlier_;
  std::shared_ptr<tls::Context> tls_;
};

}  // namespace outrigger::upstream
