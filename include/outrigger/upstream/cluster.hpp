// A cluster as one config snapshot sees it: its settings, resolved
// endpoints, and what all workers share about it (admission limits and the
// breaker, endpoint health and ejections, the TLS context). Immutable but
// for those atomics; built on the main thread. Connections and pools are not
// here: each worker owns its own (upstream/worker_upstreams.hpp).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <string>
#include <vector>

#include "outrigger/config/config.hpp"
#include "outrigger/observability/stats.hpp"
#include "outrigger/tls/context.hpp"
#include "outrigger/upstream/admission.hpp"
#include "outrigger/upstream/outlier.hpp"

namespace outrigger::upstream {

struct Endpoint {
  std::string name;  // as configured, e.g. "127.0.0.1:8080": logs, access log, /clusters
  boost::asio::ip::tcp::endpoint address;
  std::uint32_t weight = 1;
};

class Cluster {
 public:
  Cluster(std::size_t index, config::Cluster config, std::vector<Endpoint> endpoints,
          observability::ClusterStats* stats, std::shared_ptr<observability::EndpointSet> endpoint_state);
  ~Cluster();

  // Its place in the snapshot's cluster list (workers index their pools by it).
  std::size_t index() const { return index_; }
  const config::Cluster& config() const { return config_; }
  const std::string& name() const { return config_.name; }
  const std::vector<Endpoint>& endpoints() const { return endpoints_; }
  observability::ClusterStats& stats() const { return *stats_; }
  Admission& admission() const { return *admission_; }
  // The classic breaker, when the cluster configures one.
  CircuitBreaker* breaker() const { return admission_->breaker(); }
  // Outlier detection, when the cluster configures it.
  OutlierDetector* outlier_detector() const { return outlier_.get(); }
  // Health and ejection of each endpoint, shared by all workers.
  const observability::EndpointSet& endpoint_state() const { return *endpoint_state_; }
  const std::shared_ptr<observability::EndpointSet>& endpoint_state_ptr() const { return endpoint_state_; }
  // TLS to the endpoints, when the cluster has a `tls` block (else null).
  tls::Context* tls() const { return tls_.get(); }
  const std::shared_ptr<tls::Context>& tls_ptr() const { return tls_; }
  void set_tls(std::shared_ptr<tls::Context> tls);

 private:
  std::size_t index_;
  config::Cluster config_;
  std::vector<Endpoint> endpoints_;
  observability::ClusterStats* stats_;
  std::shared_ptr<observability::EndpointSet> endpoint_state_;
  std::unique_ptr<Admission> admission_;
  std::unique_ptr<OutlierDetector> outlier_;
  std::shared_ptr<tls::Context> tls_;
};

}  // namespace outrigger::upstream
