#include "outrigger/server/worker.hpp"

#include "outrigger/server/inspector.hpp"
#include "outrigger/server/memory_sweep.hpp"
#include "outrigger/server/tcp_proxy.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>
#include <random>

namespace outrigger::server {

namespace asio = boost::asio;
using asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// A listener as one worker runs it: the accepting socket and the pipeline of
// the current snapshot.
class Worker::Slot final : public http::ConnectionHost {
 public:
  // As many as the buffer pool keeps free blocks: lingering costs no malloc.
  static constexpr std::size_t kMaxLingering = 64;

  Slot(Worker& worker, std::string name) : worker_(worker), name_(std::move(name)), acceptor_(worker.io_) {}

  const std::string& name() const { return name_; }
  tcp::acceptor& acceptor() { return acceptor_; }

  void set_pipeline(std::shared_ptr<Pipeline> p, observability::ListenerSlice* stats) {
    pipeline_ = std::move(p);
    stats_ = stats;
    if (pipeline_) {
      inbound_ = pipeline_->listener().config->direction == config::Direction::inbound;
      listener_open_ = &pipeline_->listener().stats->connections_open;
    }
  }
  bool inbound() const { return inbound_.load(std::memory_order_relaxed); }
  std::size_t open() const { return open_.load(std::memory_order_relaxed); }
  // Stop accepting; the connections close after what they are doing.
  void drain() {
    draining_ = true;
    boost::system::error_code ec;
    acceptor_.close(ec);
  }

  std::shared_ptr<http::ExchangeHandler> current_handler() override { return pipeline_; }
  const http::CodecSettings& settings() override { return pipeline_->settings(); }
  bool draining() const override { return draining_; }
  http::RequestIdGenerator& request_ids() override { return worker_.context_.request_ids; }
  core::DeadlineQueue& deadlines() override { return worker_.deadlines_; }
  bool begin_linger() override {
    if (worker_.lingering_ >= kMaxLingering) return false;
    ++worker_.lingering_;
    return true;
  }
  void end_linger() override { --worker_.lingering_; }
  observability::ListenerSlice& listener_stats() override { return *stats_; }
  void connection_closed(bool tls) override {
    stats_->connections_active.add(-1);
    if (tls) stats_->tls_connections_active.add(-1);
    worker_.open_connections_.fetch_sub(1, std::memory_order_relaxed);
    open_.fetch_sub(1, std::memory_order_relaxed);
    worker_.overload_.downstream_connections.fetch_sub(1, std::memory_order_relaxed);
    listener_open_->fetch_sub(1, std::memory_order_relaxed);
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
      // A connection accepted just before the drain closed the acceptor is
      // served (with `Connection: close`), not dropped.
      if (ec == asio::error::operation_aborted || (ec && !acceptor_.is_open()) || worker_.stopping_) co_return;
      if (ec) {
        // Out of descriptors (EMFILE, ENFILE) or similar: back off instead
        // of spinning; the connection waits in the backlog meanwhile. Logged
        // at most once a second: it can go on for a while.
        if (const auto now = std::chrono::steady_clock::now(); now - last_accept_warning_ >= std::chrono::seconds(1)) {
          last_accept_warning_ = now;
          spdlog::warn("listener {}: accept failed: {} (retrying every 50 ms)", name_, ec.message());
        }
        asio::steady_timer t(worker_.io_, std::chrono::milliseconds(50));
        co_await t.async_wait(use_tuple);
        continue;
      }
      if (!admit()) {
        // Over a limit: closed unread (a FIN; the client sent nothing yet,
        // or a reset would say so), before any work is spent on it.
        boost::system::error_code ignored;
        socket.close(ignored);
        continue;
      }
      worker_.open_connections_.fetch_add(1, std::memory_order_relaxed);
      open_.fetch_add(1, std::memory_order_relaxed);
      stats_->connections_active.add(1);
      stats_->connections_total.inc();
      if (pipeline_->listener().config->detects()) {
        asio::co_spawn(worker_.io_, dispatch(std::move(socket), pipeline_), asio::detached);
        continue;
      }
      serve_http(std::move(socket), {}, std::nullopt);
    }
  }

 private:
  // Counts the accepted connection against the process's and the listener's
  // limits; false (and counted as refused) when either is reached.
  bool admit() {
    const auto relaxed = std::memory_order_relaxed;
    const auto& limits = pipeline_->snapshot()->config.overload;
    const auto process = worker_.overload_.downstream_connections.fetch_add(1, relaxed);
    const auto listener = listener_open_->fetch_add(1, relaxed);
    auto refuse = [&](observability::ConnectionRefusal why) {
      worker_.overload_.downstream_connections.fetch_sub(1, relaxed);
      listener_open_->fetch_sub(1, relaxed);
      stats_->count(why);
      return false;
    };
    if (limits.max_downstream_connections && process >= limits.max_downstream_connections)
      return refuse(observability::ConnectionRefusal::max_downstream_connections);
    if (const auto max = pipeline_->listener().config->max_connections; max && listener >= max)
      return refuse(observability::ConnectionRefusal::max_connections);
    return true;
  }

  void serve_http(tcp::socket socket, std::string_view preread, std::optional<tcp::endpoint> destination) {
    auto c = std::make_unique<http::Http1Connection>(std::move(socket), *this, preread, destination);
    c->listener = this;
    worker_.connections_.push_back(*c);
    http::Http1Connection::run(std::move(c));
  }

  // A listener that takes more than HTTP: where the connection was going
  // and what it speaks decide who serves it (server/inspector.hpp).
  // A connection being looked at is on the worker's list too, so that a
  // shutdown does not wait for its detect_timeout.
  struct Inspecting final : http::ClientConnection {
    explicit Inspecting(tcp::socket s) : socket(std::move(s)) {}
    void sweep(Clock::time_point, Clock::duration) override {}
    void close_if_idle() override {}  // it will be served or closed within detect_timeout
    void close_now() override {
      boost::system::error_code ec;
      socket.close(ec);
    }
    tcp::socket socket;
  };

  asio::awaitable<void> dispatch(tcp::socket accepted, std::shared_ptr<Pipeline> pipeline) {
    auto looking = std::make_unique<Inspecting>(std::move(accepted));
    looking->listener = this;
    worker_.connections_.push_back(*looking);
    auto verdict = co_await inspect(looking->socket, *pipeline);
    auto socket = std::move(looking->socket);
    looking.reset();
    if (worker_.stopping_ || !socket.is_open()) verdict.next = Verdict::Next::close;
    switch (verdict.next) {
      case Verdict::Next::http:
        serve_http(std::move(socket), verdict.preread, verdict.destination);
        break;
      case Verdict::Next::tcp: {
        auto t = std::make_unique<TcpSession>(std::move(socket), std::move(pipeline), std::move(verdict), *this);
        t->listener = this;
        worker_.connections_.push_back(*t);
        TcpSession::run(std::move(t));
        break;
      }
      case Verdict::Next::close: {
        if (!verdict.refused.empty()) log_refused(*pipeline, verdict, socket);
        boost::system::error_code ec;
        socket.close(ec);
        connection_closed(false);
        break;
      }
    }
  }

 public:

 private:
  Worker& worker_;
  std::string name_;
  tcp::acceptor acceptor_;
  std::shared_ptr<Pipeline> pipeline_;
  observability::ListenerSlice* stats_ = nullptr;
  std::atomic<std::uint64_t>* listener_open_ = nullptr;  // the listener's connections on every worker
  std::chrono::steady_clock::time_point last_accept_warning_{};
  std::atomic<bool> inbound_{false};
  std::atomic<std::size_t> open_{0};  // its connections, for the main thread's drain
  bool draining_ = false;
};

Worker::Worker(unsigned index, unsigned workers, observability::OverloadState& overload,
               observability::MemorySlice& memory)
    : index_(index), overload_(overload), memory_(memory), upstreams_(io_.get_executor(), deadlines_, index, workers) {
  context_.index = index;
  context_.requests_in_flight = &overload.requests_in_flight[index];
  context_.request_ids = http::RequestIdGenerator(std::random_device{}() ^ (std::uint64_t(index) << 32));
  context_.random = core::Random(std::random_device{}() ^ (std::uint64_t(index) << 40));
}

Worker::~Worker() { stop(); }

std::uint16_t Worker::bind(const std::string& listener, const tcp::endpoint& endpoint) {
  auto slot = std::make_unique<Slot>(*this, listener);
  auto& a = slot->acceptor();
  a.open(endpoint.protocol());
  a.set_option(tcp::acceptor::reuse_address(true));
  int one = 1;
  if (::setsockopt(a.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    throw std::runtime_error("SO_REUSEPORT: " + std::string(std::strerror(errno)));
  a.bind(endpoint);
  a.listen(asio::socket_base::max_listen_connections);
  const auto port = a.local_endpoint().port();
  slots_.push_back(std::move(slot));
  return port;
}

std::uint16_t Worker::adopt(const std::string& listener, int fd) {
  sockaddr_storage at{};
  socklen_t len = sizeof at;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&at), &len) != 0)
    throw std::runtime_error("a passed socket: " + std::string(std::strerror(errno)));
  auto slot = std::make_unique<Slot>(*this, listener);
  auto& a = slot->acceptor();
  a.assign(at.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd);
  const auto port = a.local_endpoint().port();
  slots_.push_back(std::move(slot));
  return port;
}

std::vector<int> Worker::listening_fds(const std::string& listener) {
  std::vector<int> fds;
  for (auto& slot : slots_)
    if (slot->name() == listener) fds.push_back(slot->acceptor().native_handle());
  return fds;
}

void Worker::apply(std::shared_ptr<const Snapshot> snapshot) {
  snapshot_ = std::move(snapshot);
  for (auto& slot : slots_) {
    const auto* l = snapshot_->listener(slot->name());
    if (!l) continue;  // reloads keep the listener set; see Server::reload
    // The old pipeline goes when its last request ends; with it go the pools
    // no newer pipeline took over (closed here, on this thread).
    slot->set_pipeline(std::make_shared<Pipeline>(snapshot_, *l, context_, upstreams_), &l->stats->workers[index_]);
  }
}

void Worker::start(std::shared_ptr<const Snapshot> snapshot) {
  work_.emplace(io_.get_executor());
  apply(std::move(snapshot));
  for (auto& slot : slots_) asio::co_spawn(io_, slot->accept_loop(), asio::detached);
  sweep_timer_ = std::make_unique<asio::steady_timer>(io_);
  asio::co_spawn(io_, sweep(), asio::detached);
  thread_ = std::thread([this] { io_.run(); });
}

void Worker::publish(std::shared_ptr<const Snapshot> snapshot) {
  asio::post(io_, [this, s = std::move(snapshot)]() mutable {
    if (!stopping_) apply(std::move(s));
  });
}

void Worker::drain(bool inbound_only) {
  asio::post(io_, [this, inbound_only] {
    for (auto& slot : slots_)
      if (!inbound_only || slot->inbound()) slot->drain();
    for (auto& c : connections_)
      if (!c.listener || c.listener->draining()) c.close_if_idle();
  });
}

std::size_t Worker::open_connections(bool inbound) const {
  std::size_t n = 0;
  for (const auto& slot : slots_)
    if (slot->inbound() == inbound) n += slot->open();
  return n;
}

void Worker::shutdown() {
  stopping_ = true;
  for (auto& slot : slots_) slot->drain();
  if (sweep_timer_) sweep_timer_->cancel();
  for (auto& c : connections_) c.close_now();
  upstreams_.shutdown();
  deadlines_.shutdown();
  work_.reset();  // io_.run() returns once every coroutine has ended
}

void Worker::stop() {
  if (!thread_.joinable()) return;
  asio::post(io_, [this] { shutdown(); });
  thread_.join();
  for (auto& slot : slots_) slot->set_pipeline(nullptr, nullptr);
  snapshot_.reset();
}

asio::awaitable<void> Worker::sweep() {
  constexpr auto kTick = std::chrono::milliseconds(100);
  for (unsigned tick = 0;; ++tick) {
    sweep_timer_->expires_after(kTick);
    auto [ec] = co_await sweep_timer_->async_wait(use_tuple);
    if (ec || stopping_) co_return;
    const auto now = std::chrono::steady_clock::now();
    for (auto& c : connections_) c.sweep(now, kTick);
    if (tick % 10 == 0) {
      memory_.idle_connections_purged.inc(upstreams_.sweep(now));
      release_idle_pools(memory_);
    }
  }
}

}  // namespace outrigger::server
