#include "outrigger/router/router.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>

#include "outrigger/http/write_serialized.hpp"
#include "outrigger/upstream/cluster.hpp"
#include "outrigger/upstream/connection_pool.hpp"

namespace outrigger::router {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using http::ProxyError;
using upstream::UpstreamConnection;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

using ResponseParser = bhttp::response_parser<bhttp::buffer_body>;

// Upstream response headers may be large (cookies); Beast's default is 8 KiB.
constexpr std::uint32_t kMaxResponseHeaderBytes = 96 * 1024;
using RequestSerializer = bhttp::request_serializer<bhttp::buffer_body>;

enum class Outcome {
  done,              // response relayed; the connection may be reused
  done_close,        // response relayed; do not reuse the connection
  stale,             // a reused connection was already closed: nothing sent or received, try a fresh one
  failed,            // ex.error says why; nothing was sent downstream
  aborted,           // failed after the response started, or the client went away
};

// Edits the request header for the upstream hop.
void prepare_request(http::Exchange& ex, const config::Route& route, WorkerContext& worker) {
  auto& req = ex.request;
  http::strip_hop_by_hop(req.base());
  if (ex.request_has_body && !ex.request_content_length) req.set(bhttp::field::transfer_encoding, "chunked");
  http::add_forwarding_headers(req.base(), ex.downstream_ip, "http", worker.request_ids);
  for (const auto& name : route.request_headers_to_remove) req.erase(name);
  for (const auto& h : route.request_headers_to_add) req.set(h.name, h.value);
  req.version(11);
}

// Reads more bytes from the upstream into its buffer.
asio::awaitable<http::error_code> read_more(UpstreamConnection& c) {
  auto [ec, n] = co_await c.socket.async_read_some(c.buffer.prepare(16 * 1024), use_tuple);
  c.buffer.commit(n);
  co_return ec;
}

ProxyError error_for_read_failure(http::Exchange& ex) {
  return ex.downstream.deadline_expired() ? ProxyError::timeout : ProxyError::upstream_reset;
}

// Sends the request (streaming its body) and relays the response.
asio::awaitable<Outcome> relay(http::Exchange& ex, UpstreamConnection& c, std::span<http::Filter* const> filters,
                               bool first_try) {
  auto& req = ex.request;
  std::optional<core::BufferPool::Buffer> buf;

  // Request: header, then the body as it arrives.
  req.body().data = nullptr;
  req.body().size = 0;
  req.body().more = ex.request_has_body;
  RequestSerializer sr(req);
  for (;;) {
    const auto ec = co_await http::write_serialized(c.socket, sr);
    if (ec) {
      if (c.reused && first_try && ex.bytes_received == 0 && !ex.downstream.deadline_expired()) co_return Outcome::stale;
      ex.error = error_for_read_failure(ex);
      co_return Outcome::failed;
    }
    if (sr.is_done()) break;
    if (!buf) buf.emplace(core::thread_buffer_pool().get());
    const auto r = co_await ex.downstream.read_body(buf->data(), buf->size());
    if (r.ec) {
      ex.error = ex.downstream.deadline_expired() ? ProxyError::timeout : ProxyError::downstream_reset;
      co_return ex.error == ProxyError::timeout ? Outcome::failed : Outcome::aborted;
    }
    ex.bytes_received += r.bytes;
    req.body().data = r.bytes ? buf->data() : nullptr;
    req.body().size = r.bytes;
    req.body().more = !r.done;
  }

  // Response header; 1xx interim responses (but 101) are dropped.
  std::optional<ResponseParser> p;
  for (;;) {
    p.emplace();
    p->body_limit(boost::none);
    p->header_limit(kMaxResponseHeaderBytes);
    p->skip(req.method() == bhttp::verb::head);
    bool got_any = c.buffer.size() > 0;
    for (;;) {
      if (c.buffer.size() > 0) {
        http::error_code ec;
        const auto n = p->put(c.buffer.data(), ec);
        c.buffer.consume(n);
        if (p->is_header_done()) break;
        if (ec && ec != bhttp::error::need_more) {
          ex.error = ProxyError::upstream_protocol;
          co_return Outcome::failed;
        }
      }
      const auto ec = co_await read_more(c);
      if (ec) {
        if (!got_any && c.reused && first_try && !ex.request_has_body && !ex.downstream.deadline_expired())
          co_return Outcome::stale;
        ex.error = error_for_read_failure(ex);
        co_return Outcome::failed;
      }
      got_any = true;
    }
    const int status = p->get().result_int();
    if (status < 100 || status >= 200 || status == 101) break;
  }

  auto& res = p->get();
  for (auto* f : filters) f->on_response(ex, res);
  ex.status = res.result_int();
  // A 101 switches the connection to another protocol: never pool it.
  const bool reusable = res.keep_alive() && ex.status != 101;

  // Response body, streamed; the header goes out with the first piece.
  res.body().data = nullptr;
  res.body().size = 0;
  res.body().more = !p->is_done();
  if (p->is_done()) {
    const auto ec = co_await ex.downstream.write_response(res);
    if (ec) co_return Outcome::aborted;
    co_return reusable ? Outcome::done : Outcome::done_close;
  }
  if (!buf) buf.emplace(core::thread_buffer_pool().get());
  for (;;) {
    std::size_t got = 0;
    while (!p->is_done()) {
      if (c.buffer.size() > 0) {
        res.body().data = buf->data();
        res.body().size = buf->size();
        http::error_code ec;
        const auto n = p->put(c.buffer.data(), ec);
        c.buffer.consume(n);
        got = buf->size() - res.body().size;
        if (ec == bhttp::error::need_buffer) ec = {};
        if (ec && ec != bhttp::error::need_more) {
          ex.error = ProxyError::upstream_protocol;  // a broken body: the client sees a truncated response
          co_return Outcome::aborted;
        }
        if (got > 0 || p->is_done()) break;  // the final chunk may come with the last data
        if (!ec && n > 0 && c.buffer.size() > 0) continue;
      }
      const auto ec = co_await read_more(c);
      if (ec == asio::error::eof && p->need_eof()) {
        http::error_code ignored;
        p->put_eof(ignored);
        break;
      }
      if (ec) {
        // Response already started: the client sees a truncated response.
        ex.error = error_for_read_failure(ex);
        if (!ex.downstream.response_started()) {
          co_return Outcome::failed;
        }
        co_return Outcome::aborted;
      }
    }
    res.body().data = got ? buf->data() : nullptr;
    res.body().size = got;
    res.body().more = !p->is_done();
    const auto ec = co_await ex.downstream.write_response(res);
    if (ec) {
      ex.error = ex.downstream.deadline_expired() ? ProxyError::timeout : ProxyError::downstream_reset;
      co_return Outcome::aborted;
    }
    ex.bytes_sent += got;
    if (p->is_done()) break;
  }
  co_return reusable && !p->need_eof() ? Outcome::done : Outcome::done_close;
}

}  // namespace

asio::awaitable<void> reply_error(http::Exchange& ex, ProxyError error) {
  ex.error = error;
  const auto reply = http::local_reply_for(error);
  ex.error_reason = reply.reason;
  if (ex.downstream.response_started()) {
    ex.close_connection = true;
    co_return;
  }
  const auto ec = co_await ex.downstream.send_local_reply(reply.status, reply.body, reply.reason, "text/plain");
  ex.status = ec ? 0 : reply.status;
  if (ec) ex.close_connection = true;
}

asio::awaitable<void> forward(http::Exchange& ex, const config::Route& route, const RouteTarget& target,
                              std::span<http::Filter* const> filters, WorkerContext& worker) {
  const auto& cluster = *target.cluster;
  auto& pools = cluster.pools(worker.index);
  auto& stats = cluster.stats().workers[worker.index];
  ex.cluster_name = cluster.name();
  prepare_request(ex, route, worker);

  const auto& limits = cluster.config().circuit_breakers;
  auto& load = cluster.stats().load;
  if (load.requests.fetch_add(1, std::memory_order_relaxed) >= limits.max_requests) {
    load.requests.fetch_sub(1, std::memory_order_relaxed);
    stats.overflow_requests.inc();
    co_await reply_error(ex, ProxyError::overflow);
    co_return;
  }
  struct EndClusterRequest {
    observability::ClusterLoad& load;
    ~EndClusterRequest() { load.requests.fetch_sub(1, std::memory_order_relaxed); }
  } end_cluster_request{load};

  const auto timeout = route.timeout;
  const auto deadline = ex.start + timeout;
  if (timeout.count() > 0) ex.downstream.arm_deadline(deadline, nullptr);

  const std::size_t index = pools.pick();
  auto& pool = pools.endpoint(index);
  ex.upstream_host = cluster.endpoints()[index].name;
  pools.begin_request(index);
  struct EndRequest {
    upstream::ClusterPools& pools;
    std::size_t index;
    ~EndRequest() { pools.end_request(index); }
  } end_request{pools, index};

  for (bool first_try = true;; first_try = false) {
    auto connect_timeout = cluster.config().connect_timeout;
    if (timeout.count() > 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left < connect_timeout) connect_timeout = std::max(left, std::chrono::milliseconds(1));
    }
    auto acquired = co_await pools.acquire(index, limits, connect_timeout);
    if (!acquired.connection) {
      const bool timed_out = timeout.count() > 0 && std::chrono::steady_clock::now() >= deadline;
      co_await reply_error(ex, timed_out                                                        ? ProxyError::timeout
                               : acquired.failure == upstream::Acquired::Failure::overflow ? ProxyError::overflow
                                                                                            : ProxyError::connect_failure);
      co_return;
    }
    auto c = std::move(acquired.connection);
    if (timeout.count() > 0) ex.downstream.arm_deadline(deadline, &c->socket);
    ++c->requests;
    stats.requests.inc();
    const auto outcome = co_await relay(ex, *c, filters, first_try);
    ex.downstream.disarm_deadline();
    switch (outcome) {
      case Outcome::done:
        pool.give_back(std::move(c));
        co_return;
      case Outcome::done_close:
        co_return;
      case Outcome::stale:
        if (timeout.count() > 0) ex.downstream.arm_deadline(deadline, nullptr);
        continue;
      case Outcome::failed:
        co_await reply_error(ex, ex.error);
        co_return;
      case Outcome::aborted:
        if (ex.error == ProxyError::none) ex.error = ProxyError::downstream_reset;
        ex.error_reason = http::to_string(ex.error);
        ex.close_connection = true;
        co_return;
    }
  }
}

}  // namespace outrigger::router
