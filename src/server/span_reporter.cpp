#include "outrigger/server/span_reporter.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace outrigger::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr auto kExchangeTimeout = std::chrono::seconds(5);

struct SpanReporter::Impl {
  asio::io_context& io;
  CurrentSnapshot current;
  asio::steady_timer timer{io};
  // The keep-alive connection to the collector: plain, or TLS when the
  // collector's cluster has a `tls` block (then `stream` is its TCP layer).
  std::optional<beast::tcp_stream> stream;
  std::unique_ptr<asio::ssl::stream<beast::tcp_stream&>> secure;
  std::shared_ptr<const tls::Loaded> secure_material;
  std::size_t next_endpoint = 0;
  bool stopping = false;
  std::function<void()> on_stopped;
  std::vector<observability::Span> batch;
  observability::SpanEncoder encoder;
  std::string body_buffer;
  bool warned = false;  // log the first failure of a streak only

  Impl(asio::io_context& i, CurrentSnapshot c) : io(i), current(std::move(c)) {}

  // POSTs one batch; true on a 2xx.
  asio::awaitable<bool> post(const Snapshot& snap, const config::Tracing& cfg, std::string_view body) {
    const upstream::Cluster* cluster = nullptr;
    for (const auto& c : snap.clusters)
      if (c->name() == cfg.collector_cluster) cluster = c.get();
    if (!cluster || cluster->endpoints().empty()) co_return false;
    bhttp::request<bhttp::string_body> req{bhttp::verb::post, cfg.collector_path, 11};
    req.set(bhttp::field::host, cfg.collector_cluster);
    req.set(bhttp::field::content_type, "application/json");
    req.set(bhttp::field::user_agent, "outrigger");
    // The body's memory is kept from one POST to the next.
    req.body().swap(body_buffer);
    req.body().assign(body);
    req.prepare_payload();
    struct GiveBack {
      std::string& to;
      std::string& from;
      ~GiveBack() { to.swap(from); }
    } give_back{body_buffer, req.body()};
    for (int attempt = 0; attempt < 2; ++attempt) {
      const bool reused = stream.has_value();
      if (!stream && !co_await connect(*cluster)) co_return false;
      stream->expires_after(kExchangeTimeout);
      bhttp::response<bhttp::string_body> res;
      const auto ec = secure ? co_await exchange(*secure, req, res) : co_await exchange(*stream, req, res);
      if (ec) {
        close();
        if (reused) continue;  // the collector closed the idle connection: once more on a new one
        co_return false;
      }
      if (!res.keep_alive()) close();
      co_return res.result_int() >= 200 && res.result_int() < 300;
    }
    co_return false;
  }

  asio::awaitable<bool> connect(const upstream::Cluster& cluster) {
    const auto& ep = cluster.endpoints()[next_endpoint++ % cluster.endpoints().size()];
    stream.emplace(io);
    stream->expires_after(cluster.config().connect_timeout);
    auto [ec] = co_await stream->async_connect(ep.address, use_tuple);
    if (!ec && cluster.tls()) {
      secure_material = cluster.tls()->current();
      secure = std::make_unique<asio::ssl::stream<beast::tcp_stream&>>(*stream, *secure_material->context);
      cluster.tls()->prepare_client(secure->native_handle(), *secure_material);
      std::tie(ec) = co_await secure->async_handshake(asio::ssl::stream_base::client, use_tuple);
    }
    if (ec) close();
    co_return !ec;
  }

  void close() {
    secure.reset();
    secure_material.reset();
    stream.reset();
  }

  template <class Stream>
  static asio::awaitable<boost::system::error_code> exchange(Stream& s, bhttp::request<bhttp::string_body>& req,
                                                             bhttp::response<bhttp::string_body>& res) {
    auto [wec, wn] = co_await bhttp::async_write(s, req, use_tuple);
    if (wec) co_return wec;
    beast::flat_buffer buffer;
    auto [rec, rn] = co_await bhttp::async_read(s, buffer, res, use_tuple);
    co_return rec;
  }

  // Drains every queue, batch by batch; stops at the first failed batch.
  // Returns how many spans it took.
  asio::awaitable<std::size_t> flush(const Snapshot& snap) {
    const auto& cfg = *snap.config.tracing;
    auto& counters = snap.spans->counters;
    std::size_t taken = 0;
    for (;;) {
      batch.clear();
      for (auto& q : snap.spans->queues) q->drain(batch, cfg.max_batch_spans - batch.size());
      if (batch.empty()) co_return taken;
      taken += batch.size();
      const auto n = batch.size();
      if (co_await post(snap, cfg, encoder.encode(batch, cfg.service_name))) {
        counters.sent.fetch_add(n, std::memory_order_relaxed);
        if (warned) spdlog::info("tracing: the collector accepts spans again");
        warned = false;
      } else {
        counters.dropped_collector.fetch_add(n, std::memory_order_relaxed);
        if (!warned) spdlog::warn("tracing: cannot send spans to cluster {}; dropping them", cfg.collector_cluster);
        warned = true;
        co_return taken;
      }
    }
  }

  asio::awaitable<void> run(std::shared_ptr<Impl> self) {
    // Under load the queues fill faster than flush_interval empties them: after
    // a flush that found at least a full batch, look again soon.
    constexpr auto kBusyInterval = std::chrono::milliseconds(20);
    bool busy = false;
    for (;;) {
      auto snap = current();
      auto interval = snap && snap->config.tracing ? snap->config.tracing->flush_interval
                                                  : std::chrono::milliseconds(1000);
      if (busy) interval = std::min<std::chrono::milliseconds>(interval, kBusyInterval);
      if (!stopping) {
        timer.expires_after(interval);
        co_await timer.async_wait(use_tuple);
        snap = current();
      }
      busy = false;
      if (snap && snap->spans && snap->config.tracing)
        busy = co_await flush(*snap) >= snap->config.tracing->max_batch_spans;
      if (stopping) break;
    }
    close();
    if (auto done = std::move(on_stopped)) done();
    (void)self;
  }
};

SpanReporter::SpanReporter(asio::io_context& io, CurrentSnapshot current)
    : impl_(std::make_shared<Impl>(io, std::move(current))) {}

SpanReporter::~SpanReporter() {
  impl_->stopping = true;
  impl_->on_stopped = nullptr;
  impl_->timer.cancel();
}

void SpanReporter::start() { asio::co_spawn(impl_->io, impl_->run(impl_), asio::detached); }

void SpanReporter::stop(std::function<void()> done) {
  impl_->stopping = true;
  impl_->on_stopped = std::move(done);
  impl_->timer.cancel();
}

}  // namespace outrigger::server
