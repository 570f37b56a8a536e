#include "outrigger/upstream/connection_pool.hpp"

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace outrigger::upstream {

namespace asio = boost::asio;
using asio::ip::tcp;

UpstreamConnection::UpstreamConnection(const asio::any_io_executor& ex, observability::ClusterSlice& stats)
    : stream(ex), stats_(stats) {}

UpstreamConnection::~UpstreamConnection() {
  if (counted_) stats_.connections_active.add(-1);
  if (slot_owner_) {
    boost::system::error_code ec;
    stream.socket().close(ec);
    slot_owner_->release_slot();
  }
}

EndpointPool::EndpointPool(asio::any_io_executor ex, tcp::endpoint address, const config::ConnectionPool& limits,
                           observability::ClusterSlice& stats)
    : ex_(std::move(ex)), address_(address), limits_(limits), stats_(stats) {}

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

std::unique_ptr<UpstreamConnection> EndpointPool::take_idle() {
  const auto now = std::chrono::steady_clock::now();
  while (!idle_.empty()) {
    auto c = std::move(idle_.back());
    idle_.pop_back();
    const auto idle = now - c->idle_since;
    if (idle >= limits_.idle_timeout) continue;
    // A connection idle for a moment is almost surely alive; a stale one is
    // caught by the router's one retry for requests without a body.
    if (idle >= kPeekAfter && looks_dead(c->stream.socket())) continue;
    c->reused = true;
    return c;
  }
  return nullptr;
}

asio::awaitable<ConnectResult> EndpointPool::connect(std::chrono::milliseconds timeout, const tls::Context* tls) {
  using namespace asio::experimental::awaitable_operators;
  constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
  auto c = std::make_unique<UpstreamConnection>(ex_, stats_);
  asio::steady_timer timer(ex_, timeout);
  auto result = co_await (c->stream.socket().async_connect(address_, use_tuple) || timer.async_wait(use_tuple));
  boost::system::error_code ec =
      result.index() == 0 ? std::get<0>(std::get<0>(result)) : make_error_code(asio::error::timed_out);
  if (ec) {
    stats_.connect_failures.inc();
    co_return ConnectResult{ec, nullptr};
  }
  c->stream.socket().set_option(tcp::no_delay(true), ec);
  if (tls) {
    const auto material = tls->current();
    auto& s = c->stream.start_tls(material);
    SSL* ssl = s.native_handle();
    tls->prepare_client(ssl, *material);
    auto handshake = co_await (s.async_handshake(net::TlsStream::client, use_tuple) || timer.async_wait(use_tuple));
    ec = handshake.index() == 0 ? std::get<0>(std::get<0>(handshake)) : make_error_code(asio::error::timed_out);
    if (ec) {
      stats_.count(tls::classify_failure(ssl, ec));
      stats_.connect_failures.inc();
      co_return ConnectResult{ec, nullptr};
    }
    stats_.tls_handshakes.inc();
  }
  c->counted_ = true;
  stats_.connections_active.add(1);
  stats_.connections_total.inc();
  co_return ConnectResult{{}, std::move(c)};
}

bool EndpointPool::give_back(std::unique_ptr<UpstreamConnection> c) {
  if (idle_.size() >= limits_.max_idle_per_endpoint) return false;
  if (limits_.max_requests_per_connection && c->requests >= limits_.max_requests_per_connection) return false;
  if (c->buffer.size() > 0) return false;  // unread bytes: not a clean message boundary
  c->buffer.shrink_to_fit();
  c->idle_since = std::chrono::steady_clock::now();
  c->reused = false;
  auto* owner = c->slot_owner_;
  idle_.push_back(std::move(c));
  if (owner) owner->notify_slot();
  return true;
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

ClusterPools::ClusterPools(const asio::any_io_executor& ex, const config::Cluster& config,
                           const std::vector<Endpoint>& endpoints, observability::ClusterSlice& stats,
                           observability::ClusterLoad& load, std::uint64_t seed, unsigned workers)
    : limits_(config.connection_pool),
      tls_(config.tls),
      ex_(ex),
      weights_(weights_of(endpoints)),
      policy_(config.lb_policy),
      stats_(stats),
      load_(load),
      active_(endpoints.size(), 0),
      balancer_(config.lb_policy, weights_of(endpoints), seed),
      budget_config_(config.retry_budget),
      budget_(config.retry_budget, workers) {
  for (const auto& e : endpoints) {
    addresses_.push_back(e.address);
    endpoints_.push_back(std::make_unique<EndpointPool>(ex, e.address, limits_, stats));
  }
}

ClusterPools::~ClusterPools() {
  // Idle connections close first, while the waiter list they notify exists.
  endpoints_.clear();
}

void ClusterPools::notify_slot() {
  if (waiters_.empty()) return;
  auto* t = waiters_.front();
  waiters_.pop_front();
  t->cancel();  // the waiter wakes with operation_aborted: "try again"
}

asio::awaitable<bool> ClusterPools::wait_for_slot(std::chrono::steady_clock::time_point deadline) {
  asio::steady_timer timer(ex_, deadline);
  waiters_.push_back(&timer);
  auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  if (!ec) std::erase(waiters_, &timer);  // timed out: still queued
  co_return ec == asio::error::operation_aborted;
}

asio::awaitable<Acquired> ClusterPools::acquire(std::size_t i, const config::CircuitBreakers& limits,
                                                std::chrono::milliseconds connect_timeout, const tls::Context* tls) {
  auto& pool = *endpoints_[i];
  const auto deadline = std::chrono::steady_clock::now() + connect_timeout;
  bool pending = false;
  auto leave_queue = [&] {
    if (pending) load_.pending.fetch_sub(1, std::memory_order_relaxed);
    pending = false;
  };
  for (;;) {
    if (auto c = pool.take_idle()) {
      leave_queue();
      co_return Acquired{std::move(c)};
    }
    if (load_.connections.fetch_add(1, std::memory_order_relaxed) < limits.max_connections) {
      leave_queue();
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      auto r = co_await pool.connect(std::max(left, std::chrono::milliseconds(1)), tls);
      if (r.ec) {
        load_.connections.fetch_sub(1, std::memory_order_relaxed);
        notify_slot();
        co_return Acquired{nullptr, r.ec == asio::error::timed_out ? Acquired::Failure::connect_timeout
                                                                     : Acquired::Failure::connect_failure};
      }
      r.connection->slot_owner_ = this;
      co_return Acquired{std::move(r.connection)};
    }
    load_.connections.fetch_sub(1, std::memory_order_relaxed);
    if (!pending) {
      if (load_.pending.fetch_add(1, std::memory_order_relaxed) >= limits.max_pending_requests) {
        load_.pending.fetch_sub(1, std::memory_order_relaxed);
        stats_.overflow_pending.inc();
        co_return Acquired{nullptr, Acquired::Failure::overflow};
      }
      pending = true;
    }
    if (!co_await wait_for_slot(deadline)) {
      leave_queue();
      stats_.overflow_connections.inc();
      co_return Acquired{nullptr, Acquired::Failure::overflow};
    }
  }
}

void ClusterPools::sweep(std::chrono::steady_clock::time_point now) {
  for (auto& e : endpoints_) e->sweep(now);
}

bool ClusterPools::serves(const config::Cluster& config, const std::vector<Endpoint>& endpoints) const {
  if (endpoints.size() != addresses_.size() || config.lb_policy != policy_ || weights_of(endpoints) != weights_ ||
      config.tls != tls_)
    return false;
  for (std::size_t i = 0; i < endpoints.size(); ++i)
    if (endpoints[i].address != addresses_[i]) return false;
  const auto& p = config.connection_pool;
  if (config.retry_budget.ratio != budget_config_.ratio ||
      config.retry_budget.min_retries_per_second != budget_config_.min_retries_per_second)
    return false;
  return p.max_idle_per_endpoint == limits_.max_idle_per_endpoint && p.idle_timeout == limits_.idle_timeout &&
         p.max_requests_per_connection == limits_.max_requests_per_connection;
}

}  // namespace outrigger::upstream
