#include "outrigger/upstream/connection_pool.hpp"

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

#include <atomic>
#include <cstring>

#include "outrigger/http/http2_client.hpp"
#include "outrigger/net/original_dst.hpp"
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

// One HTTP/2 connection of an endpoint's pool: its socket and slot (an
// UpstreamConnection) and the nghttp2 client on it. Shared by the leases of
// its streams and by its own run, which ends when the connection does.
class H2Connection final : public http::Http2ClientEvents, public std::enable_shared_from_this<H2Connection> {
 public:
  H2Connection(EndpointPool& pool, std::unique_ptr<UpstreamConnection> base, const config::Http2& settings, bool tls,
               std::uint32_t max_streams, observability::Http2Slice& stats)
      : pool_(&pool),
        base_(std::move(base)),
        client_(base_->codec.stream(), pool.owner_.owner().deadlines(), settings, tls, max_streams, &stats, this) {}

  static asio::awaitable<void> run(std::shared_ptr<H2Connection> self) {
    co_await self->client_.run();
    if (self->pool_) self->pool_->forget(*self);
  }
  http::Http2Client& client() { return client_; }
  void stream_released() override {
    if (pool_) pool_->owner_.notify_all();
  }
  // The pool goes (a reload dropped it) while the connection's run has not
  // ended yet: the slot and the gauges are given back now, and the
  // connection closes.
  void orphan() {
    auto& owner = pool_->owner_;
    pool_ = nullptr;
    client_.orphan();
    if (std::exchange(base_->counted_, false)) owner.stats_.connections_active.add(-1);
    if (std::exchange(base_->holds_slot_, false)) owner.release_slot();
  }

 private:
  EndpointPool* pool_;
  std::unique_ptr<UpstreamConnection> base_;
  http::Http2Client client_;  // after base_: it uses base_'s socket
};

void Lease::release() {
  if (stream_) {  // an HTTP/2 stream: it ends, the connection stays
    stream_.reset();
    h2_.reset();
    return;
  }
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

EndpointPool::~EndpointPool() {
  for (auto& c : h2_) c->orphan();
}

H2Connection* EndpointPool::h2_with_room() {
  for (auto& c : h2_)
    if (c->client().accepts_streams()) return c.get();
  return nullptr;
}

void EndpointPool::forget(H2Connection& c) {
  std::erase_if(h2_, [&](const auto& p) { return p.get() == &c; });
}

void EndpointPool::close_h2() {
  for (auto& c : h2_) c->client().close();
}

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
    idle_low_water_ = std::min(idle_low_water_, idle_.size());
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

std::size_t EndpointPool::sweep(std::chrono::steady_clock::time_point now) {
  std::erase_if(idle_, [&](const auto& c) { return now - c->idle_since >= limits_.idle_timeout; });
  std::size_t purged = 0;
  if (now - last_purge_ >= kPurgeInterval) {
    // The bottom of the stack: the connections that waited longest.
    purged = std::min(idle_low_water_, idle_.size()) / 2;
    idle_.erase(idle_.begin(), idle_.begin() + static_cast<std::ptrdiff_t>(purged));
    if (idle_.capacity() > 4 * (idle_.size() + 16)) idle_.shrink_to_fit();
    idle_low_water_ = idle_.size();
    last_purge_ = now;
  }
  for (auto& c : h2_) {
    auto& client = c->client();
    client.sweep(now);
    if (client.active_streams() == 0 && now - client.idle_since() >= limits_.idle_timeout) client.close();
  }
  return purged;
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
      protocol_(cluster.config().protocol),
      http2_(cluster.config().http2),
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
      config.tls != tls_ || config.protocol != protocol_ || config.http2 != http2_)
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

void ClusterPools::notify_all() {
  while (!waiters_.empty()) notify_slot();
}

bool ClusterPools::wants_h2(const EndpointPool& pool) const {
  if (protocol_ == config::Protocol::http2) return true;
  return protocol_ == config::Protocol::auto_detect && tls_ && pool.speaks_h2_.value_or(false);
}

Acquired ClusterPools::lease_stream(EndpointPool& pool, H2Connection& c) {
  Acquired out;
  out.lease.pool_ = &pool;
  out.lease.h2_ = c.shared_from_this();
  out.lease.stream_ = c.client().open_stream();
  stats_.requests.inc();
  return out;
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

asio::awaitable<ClusterPools::Connected> ClusterPools::connect(std::size_t i, std::chrono::milliseconds timeout,
                                                             const tls::Context* tls, std::string_view alpn) {
  using namespace asio::experimental::awaitable_operators;
  auto c = std::make_unique<UpstreamConnection>(*this);
  c->holds_slot_ = true;  // taken by acquire
  auto& socket = c->codec.stream().socket();
  asio::steady_timer timer(owner_.executor(), timeout);
  if (const auto mark = net::upstream_mark()) {
    // Marked before it connects, so that interception rules let it pass.
    boost::system::error_code ignored;
    socket.open(endpoints_[i]->address().protocol(), ignored);
    if (!ignored && !net::set_mark(socket.native_handle(), mark)) {
      static std::atomic<bool> warned{false};
      if (!warned.exchange(true)) spdlog::warn("socket_mark {}: SO_MARK failed (needs CAP_NET_ADMIN): {}", mark, std::strerror(errno));
    }
  }
  auto result = co_await (socket.async_connect(endpoints_[i]->address(), use_tuple) || timer.async_wait(use_tuple));
  boost::system::error_code ec =
      result.index() == 0 ? std::get<0>(std::get<0>(result)) : make_error_code(asio::error::timed_out);
  if (!ec) socket.set_option(tcp::no_delay(true), ec);
  bool h2 = protocol_ == config::Protocol::http2;
  if (!ec && tls) {
    const auto material = tls->current();
    auto& s = c->codec.stream().start_tls(material);
    SSL* ssl = s.native_handle();
    tls->prepare_client(ssl, *material);
    if (!alpn.empty())
      SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(alpn.data()), static_cast<unsigned>(alpn.size()));
    auto handshake = co_await (s.async_handshake(net::TlsStream::client, use_tuple) || timer.async_wait(use_tuple));
    ec = handshake.index() == 0 ? std::get<0>(std::get<0>(handshake)) : make_error_code(asio::error::timed_out);
    if (ec) stats_.count(tls::classify_failure(ssl, ec));
    if (!ec) stats_.tls_handshakes.inc();
    if (!ec && protocol_ == config::Protocol::auto_detect) {
      h2 = tls::alpn_selected(ssl) == "h2";
      endpoints_[i]->speaks_h2_ = h2;
    }
  }
  if (ec) {
    stats_.connect_failures.inc();
    co_return Connected{nullptr,
                        ec == asio::error::timed_out ? Acquired::Failure::connect_timeout
                                                     : Acquired::Failure::connect_failure};
  }
  c->counted_ = true;
  stats_.connections_active.add(1);
  stats_.connections_total.inc();
  co_return Connected{std::move(c), Acquired::Failure::none, h2};
}

asio::awaitable<Acquired::Failure> ClusterPools::wait_pending(EndpointPool& pool, Admission& admission, bool& queued,
                                                              Clock::time_point deadline, bool for_connect) {
  if (!queued) {
    if (!admission.join_queue(stats_)) co_return Acquired::Failure::overflow;
    queued = true;
  }
  if (for_connect) ++pool.h2_waiting_;
  const bool woken = co_await wait_for_slot(deadline);
  if (for_connect) --pool.h2_waiting_;
  if (woken) co_return Acquired::Failure::none;
  if (stopped_) co_return Acquired::Failure::stopped;
  if (for_connect) co_return Acquired::Failure::connect_timeout;
  stats_.overflow_connections.inc();
  co_return Acquired::Failure::overflow;
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
    const bool h2 = wants_h2(pool);
    if (h2) {
      if (auto* c = pool.h2_with_room()) {
        queued.leave();
        co_return lease_stream(pool, *c);
      }
      // A connection being made will have room for these too (a burst of
      // requests opens one connection, not one each).
      if (pool.h2_connecting_ > 0 && pool.h2_waiting_ < pool.h2_connecting_ * http2_.max_concurrent_streams) {
        if (const auto f = co_await wait_pending(pool, admission, queued.in, deadline, true); f != Acquired::Failure::none) co_return Acquired{{}, f};
        now = Clock::now();
        continue;
      }
    } else if (auto c = pool.take_idle(now)) {
      queued.leave();
      Acquired out;
      out.lease.pool_ = &pool;
      out.lease.connection_ = std::move(c);
      ++out.lease.connection_->requests;
      out.lease.connection_->codec.begin(true);
      stats_.requests.inc();
      co_return out;
    }
    if (!admission.take_connection()) {
      if (const auto f = co_await wait_pending(pool, admission, queued.in, deadline, false); f != Acquired::Failure::none) co_return Acquired{{}, f};
      now = Clock::now();
      continue;
    }
    queued.leave();
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    if (h2) ++pool.h2_connecting_;
    auto made = co_await connect(i, std::max(left, std::chrono::milliseconds(1)), tls);
    if (h2) --pool.h2_connecting_;
    if (made.failure != Acquired::Failure::none) {
      if (h2) notify_all();  // those waiting for it try on their own
      co_return Acquired{{}, made.failure};
    }
    if (made.h2) {
      auto c = std::make_shared<H2Connection>(pool, std::move(made.connection), http2_, tls != nullptr,
                                              limits_.max_requests_per_connection, stats_.http2);
      pool.h2_.push_back(c);
      asio::co_spawn(owner_.executor(), H2Connection::run(c), asio::detached);
      auto out = lease_stream(pool, *c);
      notify_all();  // room for the requests that waited for it
      co_return out;
    }
    Acquired out;
    out.lease.pool_ = &pool;
    out.lease.connection_ = std::move(made.connection);
    ++out.lease.connection_->requests;
    out.lease.connection_->codec.begin(false);
    stats_.requests.inc();
    co_return out;
  }
}

asio::awaitable<std::unique_ptr<UpstreamConnection>> ClusterPools::connect_exclusive(std::size_t i, Admission& admission,
                                                                                    Clock::time_point deadline,
                                                                                    const tls::Context* tls,
                                                                                    Acquired::Failure& failure,
                                                                                    std::string_view alpn) {
  failure = Acquired::Failure::none;
  if (stopped_) {
    failure = Acquired::Failure::stopped;
    co_return nullptr;
  }
  if (!admission.take_connection()) {
    stats_.overflow_connections.inc();
    failure = Acquired::Failure::overflow;
    co_return nullptr;
  }
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  auto made = co_await connect(i, std::max(left, std::chrono::milliseconds(1)), tls, alpn);
  failure = made.failure;
  if (made.connection) {
    made.connection->codec.begin(false);
    stats_.requests.inc();
  }
  co_return std::move(made.connection);
}

std::size_t ClusterPools::sweep(Clock::time_point now) {
  std::size_t purged = 0;
  for (auto& e : endpoints_) purged += e->sweep(now);
  return purged;
}

void ClusterPools::shutdown() {
  stopped_ = true;
  for (auto& e : endpoints_) {
    e->close_idle();
    e->close_h2();
  }
  for (auto* list : {&waiters_, &sleepers_}) {
    while (!list->empty()) {
      auto& w = list->front();
      list->pop_front();
      w.timer.cancel();
    }
  }
}

}  // namespace outrigger::upstream
