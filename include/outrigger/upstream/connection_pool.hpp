// Per-worker keep-alive connections to a cluster's endpoints. Idle connections
// are reused most-recent first; one that the endpoint closed while idle is
// noticed (a non-blocking peek) and dropped before it is handed out.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <vector>

#include "outrigger/config/config.hpp"
#include "outrigger/core/buffer_pool.hpp"
#include "outrigger/net/stream.hpp"
#include "outrigger/observability/stats.hpp"
#include "outrigger/upstream/cluster.hpp"
#include "outrigger/upstream/load_balancer.hpp"
#include "outrigger/upstream/retry_budget.hpp"

namespace outrigger::upstream {

class EndpointPool;
class ClusterPools;

// One connection to an endpoint, with its read buffer. While it exists it
// holds one of the cluster's max_connections slots.
class UpstreamConnection {
 public:
  UpstreamConnection(const boost::asio::any_io_executor& ex, observability::ClusterSlice& stats);
  ~UpstreamConnection();
  net::Stream stream;  // TCP, or TLS when the cluster has a `tls` block
  boost::beast::basic_flat_buffer<core::PooledAllocator<char>> buffer;
  std::uint32_t requests = 0;  // requests sent on it so far
  bool reused = false;         // taken from the idle list
  std::chrono::steady_clock::time_point idle_since;

 private:
  observability::ClusterSlice& stats_;
  bool counted_ = false;
  ClusterPools* slot_owner_ = nullptr;  // set once the connection holds a slot
  friend class EndpointPool;
  friend class ClusterPools;
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
  // A new connection, with its TLS handshake done when `tls` is set; both
  // within `timeout`.
  boost::asio::awaitable<ConnectResult> connect(std::chrono::milliseconds timeout, const tls::Context* tls);
  // Keeps a connection for reuse when the pool has room and its limits allow.
  // Returns true when it was kept.
  bool give_back(std::unique_ptr<UpstreamConnection> c);
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

// How acquiring a connection ended.
struct Acquired {
  std::unique_ptr<UpstreamConnection> connection;  // set on success
  enum class Failure { none, connect_failure, connect_timeout, overflow } failure = Failure::none;
};

// One worker's pools for one cluster, its load balancer and its count of
// requests in flight per endpoint. Connection slots (max_connections) and the
// pending queue (max_pending_requests) are counted for the whole cluster,
// across workers, in observability::ClusterLoad.
class ClusterPools {
 public:
  ClusterPools(const boost::asio::any_io_executor& ex, const config::Cluster& config,
               const std::vector<Endpoint>& endpoints, observability::ClusterSlice& stats,
               observability::ClusterLoad& load, std::uint64_t seed, unsigned workers = 1);
  ~ClusterPools();

  RetryBudget& retry_budget() { return budget_; }

  // A connection to endpoint i: an idle one, a new one if a slot is free, or,
  // when all slots are taken, the next one freed on this worker, waiting in
  // the bounded pending queue for at most connect_timeout.
  boost::asio::awaitable<Acquired> acquire(std::size_t i, const config::CircuitBreakers& limits,
                                           std::chrono::milliseconds connect_timeout, const tls::Context* tls);
  // A connection went back to a pool or closed: wake the oldest pending request.
  void notify_slot();
  // A connection that held a slot closed.
  void release_slot() {
    load_.connections.fetch_sub(1, std::memory_order_relaxed);
    notify_slot();
  }
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
  std::optional<config::Tls> tls_;  // idle connections were made with these settings
  std::vector<boost::asio::ip::tcp::endpoint> addresses_;
  boost::asio::awaitable<bool> wait_for_slot(std::chrono::steady_clock::time_point deadline);

  boost::asio::any_io_executor ex_;
  std::vector<std::uint32_t> weights_;
  config::LbPolicy policy_;
  observability::ClusterSlice& stats_;
  observability::ClusterLoad& load_;
  std::deque<boost::asio::steady_timer*> waiters_;  // before endpoints_: closing connections notify
  std::vector<std::unique_ptr<EndpointPool>> endpoints_;
  std::vector<std::uint32_t> active_;
  LoadBalancer balancer_;
  config::RetryBudget budget_config_;
  RetryBudget budget_;
};

}  // namespace outrigger::upstream
