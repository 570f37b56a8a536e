// One worker's connections to one cluster's endpoints. HTTP/1.1: idle
// connections are reused most-recent first; one the endpoint closed while it
// idled is noticed (a non-blocking peek) and dropped before it is handed out.
// Requests borrow a connection as a Lease, which gives it back when the
// request ends at a message boundary and closes it otherwise. HTTP/2: one
// connection per endpoint carries the requests as streams, a second opens
// when its streams run out (or it goes away), and a Lease holds one stream.
// Everything here lives and dies on its worker's thread (WorkerUpstreams owns it).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "outrigger/config/config.hpp"
#include "outrigger/http/http1_client.hpp"
#include "outrigger/observability/stats.hpp"
#include "outrigger/upstream/admission.hpp"
#include "outrigger/upstream/cluster.hpp"
#include "outrigger/upstream/load_balancer.hpp"
#include "outrigger/upstream/retry_budget.hpp"

namespace outrigger::upstream {

class ClusterPools;
class EndpointPool;
class H2Connection;
class WorkerUpstreams;
using AutoUnlinkHook = boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>>;

// One connection to an endpoint. While it exists it holds one of the
// cluster's max_connections slots.
class UpstreamConnection : public AutoUnlinkHook {
 public:
  UpstreamConnection(ClusterPools& owner);
  ~UpstreamConnection();
  // The connection's socket is codec.stream(), whatever protocol it speaks.
  http::Http1Client codec;
  std::uint32_t requests = 0;  // requests sent on it so far
  std::chrono::steady_clock::time_point idle_since;

 private:
  friend class ClusterPools;
  friend class H2Connection;
  ClusterPools& owner_;
  bool holds_slot_ = false;
  bool counted_ = false;  // in connections_active
};

// A connection on loan to one request.
class Lease {
 public:
  Lease() = default;
  Lease(Lease&&) noexcept = default;
  Lease& operator=(Lease&& o) noexcept {
    release();
    pool_ = o.pool_;
    connection_ = std::move(o.connection_);
    stream_ = std::move(o.stream_);
    h2_ = std::move(o.h2_);
    return *this;
  }
  ~Lease() { release(); }
  explicit operator bool() const { return connection_ != nullptr || stream_ != nullptr; }
  http::UpstreamRequest& request() { return stream_ ? *stream_ : connection_->codec; }
  // Ends the request: back to the pool when the connection may carry another
  // (an HTTP/2 stream ends, its connection stays).
  void release();

 private:
  friend class ClusterPools;
  EndpointPool* pool_ = nullptr;
  std::unique_ptr<UpstreamConnection> connection_;  // HTTP/1.1
  std::unique_ptr<http::UpstreamRequest> stream_;   // HTTP/2: a stream of h2_
  std::shared_ptr<H2Connection> h2_;
};

// How acquiring a connection ended.
struct Acquired {
  Lease lease;  // set on success
  enum class Failure { none, connect_failure, connect_timeout, overflow, stopped } failure = Failure::none;
};

class EndpointPool {
 public:
  EndpointPool(ClusterPools& owner, boost::asio::ip::tcp::endpoint address, const config::ConnectionPool& limits);
  ~EndpointPool();

  // An idle connection that still looks usable, or null.
  std::unique_ptr<UpstreamConnection> take_idle(std::chrono::steady_clock::time_point now);
  // Keeps a connection for reuse when the pool has room and its limits allow.
  void give_back(std::unique_ptr<UpstreamConnection> c);
  // Closes connections idle for longer than the idle timeout and, every
  // kPurgeInterval, half of those no request took during the whole interval
  // (HAProxy's pool-purge-delay): what a burst left idle goes within seconds,
  // what a steady load uses stays. Returns the connections the purge closed.
  std::size_t sweep(std::chrono::steady_clock::time_point now);
  static constexpr std::chrono::seconds kPurgeInterval{5};
  void close_idle() { idle_.clear(); }
  std::size_t idle_count() const { return idle_.size(); }
  const boost::asio::ip::tcp::endpoint& address() const { return address_; }

  // HTTP/2: the connection with room for one more stream, or null.
  H2Connection* h2_with_room();
  std::size_t h2_count() const { return h2_.size(); }
  // A connection ended (its run is over): it leaves the pool.
  void forget(H2Connection& c);
  void close_h2();

 private:
  friend class ClusterPools;
  friend class H2Connection;
  ClusterPools& owner_;
  boost::asio::ip::tcp::endpoint address_;
  config::ConnectionPool limits_;
  std::vector<std::unique_ptr<UpstreamConnection>> idle_;  // a stack: the most recently used on top
  std::size_t idle_low_water_ = 0;  // the fewest idle connections since the last purge
  std::chrono::steady_clock::time_point last_purge_{};
  std::vector<std::shared_ptr<H2Connection>> h2_;
  std::optional<bool> speaks_h2_;  // protocol auto over TLS: what ALPN chose last time
  std::uint32_t h2_connecting_ = 0;  // HTTP/2 connects under way...
  std::uint32_t h2_waiting_ = 0;     // ...and the requests waiting for them
};

// One worker's pools for one cluster, its load balancer, its count of
// requests in flight per endpoint and its retry budget. Shared by the
// configs whose cluster has the same endpoints and pool settings, so that
// keep-alive connections survive a reload that does not change them.
class ClusterPools : public AutoUnlinkHook {
 public:
  using Clock = std::chrono::steady_clock;
  ClusterPools(WorkerUpstreams& owner, const Cluster& cluster, std::uint64_t seed);
  ~ClusterPools();
  ClusterPools(const ClusterPools&) = delete;
  ClusterPools& operator=(const ClusterPools&) = delete;

  // Same endpoints and pool settings: a new config may keep using these pools.
  bool serves(const config::Cluster& config, const std::vector<Endpoint>& endpoints) const;

  // The endpoint for the next try (see choose_endpoint).
  std::optional<std::size_t> choose(const observability::EndpointSet& state, bool guarded, TriedEndpoints& tried) {
    return choose_endpoint(balancer_, active_, state, guarded, tried);
  }
  // In-flight bookkeeping for least_request; pair every begin with an end.
  void begin_request(std::size_t i) { ++active_[i]; }
  void end_request(std::size_t i) { --active_[i]; }
  std::uint32_t active_requests(std::size_t i) const { return active_[i]; }
  RetryBudget& retry_budget() { return budget_; }

  // A connection to endpoint i: an idle one, a new one if `admission` grants
  // a slot, or, when all slots are taken, the next one freed on this worker,
  // waiting in the bounded pending queue; all by `deadline` (the connect timeout).
  boost::asio::awaitable<Acquired> acquire(std::size_t i, Admission& admission, Clock::time_point deadline,
                                           const tls::Context* tls);
  // A connection of its own to endpoint i, never pooled (opaque TCP, an
  // upgraded request): a max_connections slot if one is free now (no
  // queueing: a tunnel would hold it for long), then a connect by
  // `deadline`. Null on failure, and *failure says why.
  // `alpn` (wire form), when not empty, is what the TLS client offers instead of the cluster's.
  boost::asio::awaitable<std::unique_ptr<UpstreamConnection>> connect_exclusive(std::size_t i, Admission& admission,
                                                                               Clock::time_point deadline,
                                                                               const tls::Context* tls,
                                                                               Acquired::Failure& failure,
                                                                               std::string_view alpn = {});
  // Waits (a retry's back-off); ends early when the worker stops.
  boost::asio::awaitable<void> sleep(std::chrono::milliseconds d);

  std::size_t sweep(Clock::time_point now);  // the idle connections its endpoints' purges closed
  // The worker stops: idle connections close, waiters wake, acquire fails.
  void shutdown();

  std::size_t size() const { return endpoints_.size(); }
  EndpointPool& endpoint(std::size_t i) { return *endpoints_[i]; }
  observability::ClusterSlice& stats() { return stats_; }
  WorkerUpstreams& owner() { return owner_; }

 private:
  friend class UpstreamConnection;
  friend class EndpointPool;
  friend class H2Connection;
  // A request waiting for a slot, or sleeping: its timer lives in the
  // waiting coroutine's frame, and the hook unlinks it from the queue when
  // that frame goes, however it goes.
  struct Waiter : AutoUnlinkHook {
    Waiter(const boost::asio::any_io_executor& ex, Clock::time_point at) : timer(ex, at) {}
    boost::asio::steady_timer timer;
    bool woken = false;
  };
  using WaiterList = boost::intrusive::list<Waiter, boost::intrusive::constant_time_size<false>>;

  // A connection closed or went back to a pool: wake the oldest waiter.
  void notify_slot();
  // An HTTP/2 connect ended, or a connection's room changed: every waiter looks again.
  void notify_all();
  // Whether requests to endpoint i go as HTTP/2 streams (known before connecting).
  bool wants_h2(const EndpointPool& pool) const;
  void release_slot();
  boost::asio::awaitable<bool> wait_for_slot(Clock::time_point deadline);
  // Waits in the pending queue (joined once: `queued`) for a slot, or for an
  // HTTP/2 connect under way; the failure to return, or none to look again.
  boost::asio::awaitable<Acquired::Failure> wait_pending(EndpointPool& pool, Admission& admission, bool& queued,
                                                         Clock::time_point deadline, bool for_connect);
  // A new connection to endpoint i, and whether it speaks HTTP/2.
  struct Connected {
    std::unique_ptr<UpstreamConnection> connection;
    Acquired::Failure failure = Acquired::Failure::none;
    bool h2 = false;
  };
  boost::asio::awaitable<Connected> connect(std::size_t i, std::chrono::milliseconds timeout, const tls::Context* tls,
                                            std::string_view alpn = {});
  // A lease on a new stream of c.
  Acquired lease_stream(EndpointPool& pool, H2Connection& c);

  WorkerUpstreams& owner_;
  config::ConnectionPool limits_;
  std::optional<config::Tls> tls_;  // idle connections were made with these settings
  config::Protocol protocol_;
  config::Http2 http2_;
  std::vector<std::uint32_t> weights_;
  config::LbPolicy policy_;
  config::RetryBudget budget_config_;
  observability::ClusterSlice& stats_;
  observability::ClusterLoad& load_;  // connection slots are given back here
  WaiterList waiters_;                // before endpoints_: closing connections notify
  WaiterList sleepers_;
  std::vector<std::unique_ptr<EndpointPool>> endpoints_;
  std::vector<std::uint32_t> active_;
  LoadBalancer balancer_;
  RetryBudget budget_;
  bool stopped_ = false;
};

}  // namespace outrigger::upstream
