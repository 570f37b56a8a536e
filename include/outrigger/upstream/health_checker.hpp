// Active HTTP health checks for one cluster: every interval, a GET of the
// configured path to each endpoint on a fresh connection, with a timeout. A
// 2xx answer is a pass. unhealthy_threshold failures in a row take the
// endpoint out of the load balancer's choice; healthy_threshold passes in a
// row bring it back. Endpoints start healthy and are checked at once.
//
// Runs on the main thread's io_context, never on a worker. Destroying the
// checker (on that thread) stops it and marks every endpoint healthy again, so
// that removing health_check from the config cannot strand an endpoint.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <memory>
#include <vector>

#include "outrigger/config/config.hpp"
#include "outrigger/observability/stats.hpp"
#include "outrigger/upstream/cluster.hpp"

namespace outrigger::upstream {

class HealthChecker {
 public:
  // With `tls`, checks go over TLS made from it, as the cluster's requests do.
  HealthChecker(boost::asio::any_io_executor ex, const config::Cluster& cluster, const std::vector<Endpoint>& endpoints,
                std::shared_ptr<observability::EndpointSet> state, std::shared_ptr<tls::Context> tls = nullptr);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  void start();
  // A kept checker takes the new config's TLS (same settings, the watched files).
  void use_tls(std::shared_ptr<tls::Context> tls);
  // Same checks of the same endpoint state: a new config may keep this checker.
  bool serves(const config::HealthCheck& config, const observability::EndpointSet* state,
              const std::optional<config::Tls>& tls) const;

  struct Impl;  // shared with the check coroutines, which outlive a stop by one wake-up

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace outrigger::upstream
