#include "outrigger/upstream/connection_pool.hpp"

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "outrigger/upstream/worker_upstreams.hpp"

namespace outrigger::upstream {

namespace asio = boost::asio;
using asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

UpstreamConnection::UpstreamConnection(ClusterPools& owner)
    : codec(owner.owner().executor(), owner.owner().deadlines()), owner_(owner) {
  owner.owner().connections_.push_back(*this);
}

UpstreamConnection::~UpstreamConnection() {
  if (counted_) owner_.stats_.connections_active.add(-1);
  boost::system::error_code ec;
  codec.stream().socket().close(ec);
  if (holds_slot_) owner_.release_slot();
}

void Lease::release() {
  if (!connection_) return;
  const bool reusable = connection_->codec.end();
  if (reusable) {
    pool_->give_back(std::move(connection_));
  } else {
    connection_.reset();
  }
}

EndpointPool::EndpointPool(ClusterPools& owner, tcp::endpoint address, const config::ConnectionPool& limits)
    : owner_(owner), address_(address), limits_(limits) {}

EndpointPool::~EndpointPool() = default;

namespace {
constexpr auto kPeekAfter = std::chrono::milliseconds(250);

// True when the peer closed the idle connection or sent something unasked.
bool looks_dead(tcp::socket& s) {
  char c;
  const auto n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}
}  // namespace

std::unique_ptr<UpstreamConnection> EndpointPool::take_idle(std::chrono::steady_clock::time_point now) {
  while (!idle_.empty()) {
    auto c = std::move(idle_.back());
    idle_.pop_back();
    const auto idle = now - c->idle_since;
    if (idle >= limits_.idle_timeout) continue;
    // A connection idle for a moment is almost surely alive; a stale one is
    // caught by the router, which sends a request the upstream did not
    // process once more on a fresh connection.
    if (idle >= kPeekAfter && looks_dead(c->codec.stream().socket())) continue;
    return c;
  }
  return nullptr;
}

void EndpointPool::give_back(std::unique_ptr<UpstreamConnection> c) {
  if (owner_.stopped_ || idle_.size() >= limits_.max_idle_per_endpoint) return;
  if (limits_.max_requests_per_connection && c->requests >= limits_.max_requests_per_connection) return;
  if (c->codec.has_unread_bytes()) return;  // not a clean message boundary
  c->codec.release_buffer();
  c->idle_since = std::chrono::steady_clock::now();
  idle_.push_back(std::move(c));
  owner_.notify_slot();
}

void EndpointPool::sweep(std::chrono::steady_clock::time_point now) {
  std::erase_if(idle_, [&](const auto& c) { return now - c->idle_since >= limits_.idle_timeout; });
}

namespace {
std::vector<std::uint32_t> weights_of(const std::vector<Endpoint>& endpoints) {
  std::vector<std::uint32_t> w;
  for (const auto& e : endpoints) w.push_back(e.weight);
  return w;
}
}  // namespace

ClusterPools::ClusterPools(WorkerUpstreams& owner, const Cluster& cluster, std::uint64_t seed)
    : owner_(owner),
      limits_(cluster.config().connection_pool),
      tls_(cluster.config().tls),
      weights_(weights_of(cluster.endpoints())),
      policy_(cluster.config().lb_policy),
      budget_config_(cluster.config().retry_budget),
      stats_(cluster.stats().workers[owner.worker()]),
      load_(cluster.stats().load),
      active_(cluster.endpoints().size(), 0),
      balancer_(cluster.config().lb_policy, weights_, seed),
      budget_(cluster.config().retry_budget, owner.workers()) {
  for (const auto& e : cluster.endpoints())
    endpoints_.push_back(std::make_unique<EndpointPool>(*this, e.address, limits_));
  owner.pools_.push_back(*this);
}

ClusterPools::~ClusterPools() {
  // Idle connections close first, while the waiter list they notify exists.
  endpoints_.clear();
}

bool ClusterPools::serves(const config::Cluster& config, const std::vector<Endpoint>& endpoints) const {
  if (endpoints.size() != endpoints_.size() || config.lb_policy != policy_ || weights_of(endpoints) != weights_ ||
      config.tls != tls_)
    return false;
  for (std::size_t i = 0; i < endpoints.size(); ++i)
    if (endpoints[i].address != endpoints_[i]->address()) return false;
  const auto& p = config.connection_pool;
  if (config.retry_budget.ratio != budget_config_.ratio ||
      config.retry_budget.min_retries_per_second != budget_config_.min_retries_per_second)
    return false;
  return p.max_idle_per_endpoint == limits_.max_idle_per_endpoint && p.idle_timeout == limits_.idle_timeout &&
         p.max_requests_per_connection == limits_.max_requests_per_connection;
}

void ClusterPools::notify_slot() {
  if (waiters_.empty()) return;
  auto& w = waiters_.front();
  waiters_.pop_front();
  w.woken = true;
  w.timer.cancel();  // the waiter wakes with operation_aborted: "try again"
}

void ClusterPools::release_slot() {
  Admission::release_connection(load_);
  notify_slot();
}

asio::awaitable<bool> ClusterPools::wait_for_slot(Clock::time_point deadline) {
  Waiter w(owner_.executor(), deadline);
  waiters_.push_back(w);
  co_await w.timer.async_wait(use_tuple);
  co_return w.woken;  // w leaves the queue as it goes, if it is still there
}

asio::awaitable<void> ClusterPools::sleep(std::chrono::milliseconds d) {
  Waiter w(owner_.executor(), Clock::now() + d);
  sleepers_.push_back(w);
  co_await w.timer.async_wait(use_tuple);
}

asio::awaitable<Acquired> ClusterPools::connect(std::size_t i, std::chrono::milliseconds timeout,
                                                const tls::Context* tls) {
  using namespace asio::experimental::awaitable_operators;
  auto c = std::make_unique<UpstreamConnection>(*this);
  c->holds_slot_ = true;  // taken by acquire
  auto& socket = c->codec.stream().socket();
  asio::steady_timer timer(owner_.executor(), timeout);
  auto result = co_await (socket.async_connect(endpoints_[i]->address(), use_tuple) || timer.async_wait(use_tuple));
  boost::system::error_code ec =
      result.index() == 0 ? std::get<0>(std::get<0>(result)) : make_error_code(asio::error::timed_out);
  if (!ec) socket.set_option(tcp::no_delay(true), ec);
  if (!ec && tls) {
    const auto material = tls->current();
    auto& s = c->codec.stream().start_tls(material);
    SSL* ssl = s.native_handle();
    tls->prepare_client(ssl, *material);
    auto handshake = co_await (s.async_handshake(net::TlsStream::client, use_tuple) || timer.async_wait(use_tuple));
    ec = handshake.index() == 0 ? std::get<0>(std::get<0>(handshake)) : make_error_code(asio::error::timed_out);
    if (ec) stats_.count(tls::classify_failure(ssl, ec));
    if (!ec) stats_.tls_handshakes.inc();
  }
  if (ec) {
    stats_.connect_failures.inc();
    co_return Acquired{{}, ec == asio::error::timed_out ? Acquired::Failure::connect_timeout
                                                        : Acquired::Failure::connect_failure};
  }
  c->counted_ = true;
  stats_.connections_active.add(1);
  stats_.connections_total.inc();
  Acquired out;
  out.lease.pool_ = endpoints_[i].get();
  out.lease.connection_ = std::move(c);
  co_return out;
}

asio::awaitable<Acquired> ClusterPools::acquire(std::size_t i, Admission& admission, Clock::time_point deadline,
                                                const tls::Context* tls) {
  auto& pool = *endpoints_[i];
  auto now = Clock::now();
  // Leaves the pending queue however this coroutine ends.
  struct Queued {
    Admission& admission;
    bool in = false;
    ~Queued() { leave(); }
    void leave() {
      if (in) admission.leave_queue();
      in = false;
    }
  } queued{admission};
  for (;;) {
    if (stopped_) co_return Acquired{{}, Acquired::Failure::stopped};
    Acquired out;
    if (auto c = pool.take_idle(now)) {
      queued.leave();
      out.lease.pool_ = &pool;
      out.lease.connection_ = std::move(c);
    } else if (admission.take_connection()) {
      queued.leave();
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
      out = co_await connect(i, std::max(left, std::chrono::milliseconds(1)), tls);
    } else {
      if (!queued.in) {
        if (!admission.join_queue(stats_)) co_return Acquired{{}, Acquired::Failure::overflow};
        queued.in = true;
      }
      if (!co_await wait_for_slot(deadline)) {
        if (stopped_) co_return Acquired{{}, Acquired::Failure::stopped};
        stats_.overflow_connections.inc();
        co_return Acquired{{}, Acquired::Failure::overflow};
      }
      now = Clock::now();
      continue;
    }
    if (out.lease) {
      ++out.lease.connection_->requests;
      out.lease.connection_->codec.begin(out.lease.connection_->requests > 1);
      stats_.requests.inc();
    }
    co_return out;
  }
}

void ClusterPools::sweep(Clock::time_point now) {
  for (auto& e : endpoints_) e->sweep(now);
}

void ClusterPools::shutdown() {
  stopped_ = true;
  for (auto& e : endpoints_) e->close_idle();
  for (auto* list : {&waiters_, &sleepers_}) {
    while (!list->empty()) {
      auto& w = list->front();
      list->pop_front();
      w.timer.cancel();
    }
  }
}

}  // namespace outrigger::upstream
