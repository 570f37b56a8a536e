// Per-worker keep-alive connections to a cluster's endpoints. Idle connections
// are reused most-recent first; one that the endpoint closed while idle is
// noticed (a non-blocking peek) and dropped before it is handed out.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <memory>
#include <vector>

#include "outrigger/config/config.hpp"
#include "outrigger/core/buffer_pool.hpp"
#include "outrigger/observability/stats.hpp"
#include "outrigger/upstream/cluster.hpp"
#include "outrigger/upstream/load_balancer.hpp"

namespace outrigger::upstream {

class EndpointPool;

// One connection to an endpoint, with its read buffer.
class UpstreamConnection {
 public:
  UpstreamConnection(const boost::asio::any_io_executor& ex, observability::ClusterSlice& stats);
  ~UpstreamConnection();
  boost::asio::ip::tcp::socket socket;
  boost::beast::basic_flat_buffer<core::PooledAllocator<char>> buffer;
  std::uint32_t requests = 0;  // requests sent on it so far
  bool reused = false;         // taken from the idle list
  std::chrono::steady_clock::time_point idle_since;

 private:
  observability::ClusterSlice& stats_;
  bool counted_ = false;
  friend class EndpointPool;
};

struct ConnectResult {
  boost::system::error_code ec;  // timed_out on the connect timeout
  std::unique_ptr<UpstreamConnection> connection;
};

class EndpointPool {
 public:
  EndpointPool(boost::asio::any_io_executor ex, boost::asio::ip::tcp::endpoint address,
               const config::ConnectionPool& limits, observability::ClusterSlice& stats);
  ~EndpointPool();

  // An idle connection that still looks usable, or null.
  std::unique_ptr<UpstreamConnection> take_idle();
  boost::asio::awaitable<ConnectResult> connect(std::chrono::milliseconds timeout);
  // Keeps a connection for reuse when the pool has room and its limits allow.
  void give_back(std::unique_ptr<UpstreamConnection> c);
  // Closes connections idle for longer than the idle timeout.
  void sweep(std::chrono::steady_clock::time_point now);
  std::size_t idle_count() const { return idle_.size(); }

 private:
  boost::asio::any_io_executor ex_;
  boost::asio::ip::tcp::endpoint address_;
  config::ConnectionPool limits_;
  observability::ClusterSlice& stats_;
  std::vector<std::unique_ptr<UpstreamConnection>> idle_;
};

// One worker's pools for one cluster, its load balancer and its count of
// requests in flight per endpoint.
class ClusterPools {
 public:
  ClusterPools(const boost::asio::any_io_executor& ex, const config::Cluster& config,
               const std::vector<Endpoint>& endpoints, observability::ClusterSlice& stats, std::uint64_t seed);
  EndpointPool& endpoint(std::size_t i) { return *endpoints_[i]; }
  std::size_t size() const { return endpoints_.size(); }
  // The endpoint for the next request, by the cluster's lb_policy.
  std::size_t pick() { return balancer_.pick(active_); }
  // In-flight bookkeeping for least_request; pair every begin with an end.
  void begin_request(std::size_t i) { ++active_[i]; }
  void end_request(std::size_t i) { --active_[i]; }
  std::uint32_t active_requests(std::size_t i) const { return active_[i]; }
  void sweep(std::chrono::steady_clock::time_point now);
  // Same endpoints and pool settings: a new snapshot may keep using these pools.
  bool serves(const config::Cluster& config, const std::vector<Endpoint>& endpoints) const;

 private:
  config::ConnectionPool limits_;
  std::vector<boost::asio::ip::tcp::endpoint> addresses_;
  std::vector<std::uint32_t> weights_;
  config::LbPolicy policy_;
  std::vector<std::unique_ptr<EndpointPool>> endpoints_;
  std::vector<std::uint32_t> active_;
  LoadBalancer balancer_;
};

}  // namespace outrigger::upstream
