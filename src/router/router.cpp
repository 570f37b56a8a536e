#include "outrigger/router/router.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>

#include "outrigger/http/write_serialized.hpp"
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include "outrigger/upstream/cluster.hpp"
#include "outrigger/upstream/connection_pool.hpp"

namespace outrigger::router {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using http::ProxyError;
using upstream::UpstreamConnection;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

using ResponseParser = bhttp::response_parser<bhttp::buffer_body, core::SmallAllocator<char>>;

// Upstream response headers may be large (cookies); Beast's default is 8 KiB.
constexpr std::uint32_t kMaxResponseHeaderBytes = 96 * 1024;
using RequestSerializer = bhttp::request_serializer<bhttp::buffer_body, http::Fields>;

enum class Outcome {
  done,              // response relayed; the connection may be reused
  retry,             // a retriable response arrived and a retry was granted: nothing was sent downstream
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
  auto [ec, n] = co_await c.stream.async_read_some(c.buffer.prepare(16 * 1024), use_tuple);
  c.buffer.commit(n);
  co_return ec;
}

ProxyError error_for_read_failure(http::Exchange& ex) {
  return ex.downstream.deadline_expired() ? ProxyError::timeout : ProxyError::upstream_reset;
}

// The retry state of one exchange: the policy, the buffered request body, and
// the decision whether a failed try may be followed by another.
struct Retries {
  const config::RetryPolicy* policy = nullptr;  // null: no retries
  std::string body;                             // the request body, when retries are possible
  std::uint32_t attempt = 1;
  std::uint32_t max_attempts = 1;
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::chrono::milliseconds next_backoff{0};
  upstream::ClusterPools* pools = nullptr;
  observability::ClusterLoad* load = nullptr;
  observability::ClusterSlice* stats = nullptr;
  std::uint32_t max_retries = 0;
  bool holds_retry_slot = false;
  int try_status = 0;  // the status the upstream answered on this try (0: none yet)

  bool resendable() const { return policy != nullptr; }

  bool retriable_status(int s) const {
    if (!policy) return false;
    const auto on = policy->retry_on;
    if ((on & config::retry_5xx) && s >= 500) return true;
    if ((on & config::retry_gateway_error) && (s == 502 || s == 503 || s == 504)) return true;
    return (on & config::retry_retriable_status_codes) &&
           std::find(policy->retriable_status_codes.begin(), policy->retriable_status_codes.end(), s) !=
               policy->retriable_status_codes.end();
  }

  bool retriable_error(ProxyError e) const {
    if (!policy) return false;
    const auto on = policy->retry_on;
    switch (e) {
      case ProxyError::connect_failure:
        return on & (config::retry_5xx | config::retry_gateway_error | config::retry_connect_failure);
      case ProxyError::upstream_reset:
      case ProxyError::upstream_protocol:
      case ProxyError::timeout:  // a per-try timeout; the route timeout never retries
        return on & (config::retry_5xx | config::retry_gateway_error | config::retry_reset);
      default:
        return false;
    }
  }

  // Takes a retry if attempts, time, the budget and max_retries allow one.
  bool grant() {
    if (attempt >= max_attempts) return false;
    const auto now = std::chrono::steady_clock::now();
    if (now + next_backoff >= deadline) return false;
    if (!pools->retry_budget().try_retry(now)) {
      stats->retries_budget_exhausted.inc();
      return false;
    }
    if (!holds_retry_slot) {
      if (load->retries.fetch_add(1, std::memory_order_relaxed) >= max_retries) {
        load->retries.fetch_sub(1, std::memory_order_relaxed);
        stats->overflow_retries.inc();
        return false;
      }
      holds_retry_slot = true;
    }
    stats->retries.inc();
    return true;
  }

  ~Retries() {
    if (holds_retry_slot) load->retries.fetch_sub(1, std::memory_order_relaxed);
  }
};

// Sends the request (streaming its body, or the buffered copy when retries
// are possible) and relays the response.
asio::awaitable<Outcome> relay(http::Exchange& ex, UpstreamConnection& c, std::span<http::Filter* const> filters,
                               bool first_try, Retries& retries) {
  auto& req = ex.request;
  std::optional<core::BufferPool::Buffer> buf;

  // Request: header, then the body as it arrives (or all of it, buffered).
  const bool buffered = retries.resendable() && ex.request_has_body;
  req.body().data = buffered && !retries.body.empty() ? retries.body.data() : nullptr;
  req.body().size = buffered ? retries.body.size() : 0;
  req.body().more = ex.request_has_body && !buffered;
  RequestSerializer sr(req);
  for (;;) {
    const auto ec = co_await http::write_serialized(c.stream, sr);
    if (ec) {
      if (c.reused && first_try && (buffered || ex.bytes_received == 0) && !ex.downstream.deadline_expired())
        co_return Outcome::stale;
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
        if (!got_any && c.reused && first_try && (buffered || !ex.request_has_body) &&
            !ex.downstream.deadline_expired())
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
  retries.try_status = res.result_int();
  if (retries.retriable_status(res.result_int()) && retries.grant()) co_return Outcome::retry;
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
  const auto ec = co_await ex.downstream.send_local_reply(reply.status, reply.body, reply.reason, "text/plain", {});
  ex.status = ec ? 0 : reply.status;
  if (ec) ex.close_connection = true;
}

asio::awaitable<void> forward(http::Exchange& ex, const config::Route& route, const RouteTarget& target,
                              std::span<http::Filter* const> filters, WorkerContext& worker) {
  using Clock = std::chrono::steady_clock;
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

  const auto timeout = ex.control.timeout.value_or(route.timeout);
  const auto route_deadline = timeout.count() > 0 ? ex.start + timeout : Clock::time_point::max();

  // Retries need the whole request body at hand: only idempotent methods (by
  // default) whose body fits the retry buffer.
  Retries retries;
  retries.pools = &pools;
  retries.load = &load;
  retries.stats = &stats;
  retries.max_retries = limits.max_retries;
  retries.deadline = route_deadline;
  // A trusted client's x-outrigger-retry-on / -max-retries adjust the policy
  // for this request (a copy; the route's stays as it is).
  std::optional<config::RetryPolicy> adjusted;
  const config::RetryPolicy* policy = route.retry ? &*route.retry : nullptr;
  if (ex.control.retry_on || ex.control.max_retries) {
    adjusted = policy ? *policy : config::RetryPolicy{};
    adjusted->retry_on |= ex.control.retry_on;
    if (ex.control.max_retries) adjusted->num_retries = *ex.control.max_retries;
    policy = adjusted->retry_on ? &*adjusted : nullptr;
  }
  if (policy) {
    const auto method = ex.request.method_string();
    const bool method_ok = std::find(policy->retriable_methods.begin(), policy->retriable_methods.end(), method) !=
                           policy->retriable_methods.end();
    const bool body_fits = !ex.request_has_body ||
                           (ex.request_content_length && *ex.request_content_length <= route.retry_buffer_limit);
    if (method_ok && body_fits) {
      retries.policy = policy;
      retries.max_attempts = 1 + policy->num_retries;
      if (ex.request_has_body) {
        if (timeout.count() > 0) ex.downstream.arm_deadline(route_deadline, nullptr);
        retries.body.reserve(*ex.request_content_length);
        auto buf = core::thread_buffer_pool().get();
        for (bool done = false; !done;) {
          const auto r = co_await ex.downstream.read_body(buf.data(), buf.size());
          if (r.ec) {
            co_await reply_error(ex, ex.downstream.deadline_expired() ? ProxyError::timeout : ProxyError::downstream_reset);
            co_return;
          }
          retries.body.append(buf.data(), r.bytes);
          done = r.done;
        }
        ex.bytes_received = retries.body.size();
        ex.downstream.disarm_deadline();
      }
    }
  }
  pools.retry_budget().record_request(Clock::now());

  // Each try picks an endpoint that takes traffic (health check passing, not
  // ejected), preferring one not tried yet.
  const auto& endpoint_state = cluster.endpoint_state().data;
  auto* outlier = cluster.outlier_detector();
  std::vector<std::size_t> tried;
  // Without outlier detection or health checks every endpoint is always in
  // service: skip the clock read.
  const bool guarded = outlier || cluster.config().health_check;
  auto pick = [&]() -> std::optional<std::size_t> {
    const auto now_ms =
        guarded ? std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count()
                : std::int64_t{0};
    auto fresh = [&](std::size_t i) {
      return endpoint_state[i].available(now_ms) && std::find(tried.begin(), tried.end(), i) == tried.end();
    };
    std::size_t index = pools.pick();
    for (int i = 0; i < 3 && !fresh(index); ++i) index = pools.pick();
    if (!endpoint_state[index].available(now_ms)) {
      // The balancer keeps landing on endpoints that are out: take the next
      // one that takes traffic, tried or not.
      std::optional<std::size_t> found;
      for (std::size_t k = 1; k <= endpoint_state.size() && !found; ++k) {
        const auto j = (index + k) % endpoint_state.size();
        if (endpoint_state[j].available(now_ms)) found = j;
      }
      if (!found) {
        // All out. Ejection alone never empties a cluster (Envoy's panic
        // mode): take an endpoint that passes its health check.
        for (std::size_t k = 0; k < endpoint_state.size() && !found; ++k) {
          const auto j = (index + k) % endpoint_state.size();
          if (endpoint_state[j].healthy.load(std::memory_order_relaxed)) found = j;
        }
      }
      if (!found) return std::nullopt;
      index = *found;
    }
    tried.push_back(index);
    return index;
  };
  // Each try's outcome goes to outlier detection against its endpoint.
  auto record_outlier = [&](std::size_t index, int status, ProxyError error) {
    if (!outlier) return;
    using Result = upstream::OutlierDetector::Result;
    Result result;
    if (error == ProxyError::connect_failure || error == ProxyError::upstream_reset ||
        error == ProxyError::upstream_protocol || error == ProxyError::timeout) {
      result = Result::gateway_failure;  // also when the response had started
    } else if (status != 0) {
      result = upstream::OutlierDetector::classify(status);
    } else {
      return;  // the client went away, or a local limit: nothing to say about the endpoint
    }
    outlier->record(index, result, Clock::now());
  };

  for (bool first_try = true;;) {
    const auto picked = pick();
    if (!picked) {
      co_await reply_error(ex, ProxyError::no_healthy_upstream);
      co_return;
    }
    const std::size_t index = *picked;
    auto& pool = pools.endpoint(index);
    ex.upstream_host = cluster.endpoints()[index].name;
    pools.begin_request(index);
    struct EndRequest {
      upstream::ClusterPools& pools;
      std::size_t index;
      ~EndRequest() { pools.end_request(index); }
    } end_request{pools, index};

    // Tracing: each try is a CLIENT span, a child of the exchange's SERVER span.
    const auto try_start = Clock::now();
    std::uint64_t client_span_id = 0;
    std::chrono::system_clock::time_point try_start_wall;
    if (ex.traced) {
      client_span_id = ex.tracer->next_id();
      observability::inject(ex.request.base(), ex.trace, client_span_id, ex.server_span_id, ex.trace.format,
                            ex.trace_headers_absent);
      ex.trace_headers_absent = false;  // from the second try on, the headers are ours to replace
      try_start_wall = std::chrono::system_clock::now();
    }

    auto try_deadline = route_deadline;
    if (retries.policy && retries.policy->per_try_timeout.count() > 0)
      try_deadline = std::min(try_deadline, Clock::now() + retries.policy->per_try_timeout);
    if (retries.policy) {
      const auto cap = std::min(retries.policy->backoff_max,
                                retries.policy->backoff_base * (1 << std::min<std::uint32_t>(retries.attempt - 1, 16)));
      retries.next_backoff = std::chrono::milliseconds(worker.random.below(static_cast<std::uint64_t>(cap.count()) + 1));
      ex.request.set("x-outrigger-attempt-count", std::to_string(retries.attempt));
    }

    ProxyError failure = ProxyError::none;
    std::unique_ptr<UpstreamConnection> c;
    auto connect_timeout = cluster.config().connect_timeout;
    if (try_deadline != Clock::time_point::max()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(try_deadline - Clock::now());
      connect_timeout = std::clamp(left, std::chrono::milliseconds(1), connect_timeout);
    }
    auto acquired = co_await pools.acquire(index, limits, connect_timeout, target.cluster->tls());
    if (acquired.connection) {
      c = std::move(acquired.connection);
    } else if (acquired.failure == upstream::Acquired::Failure::overflow) {
      co_await reply_error(ex, ProxyError::overflow);
      co_return;
    } else {
      failure = Clock::now() >= route_deadline ? ProxyError::timeout : ProxyError::connect_failure;
    }

    Outcome outcome = Outcome::failed;
    retries.try_status = 0;
    if (c) {
      if (try_deadline != Clock::time_point::max()) ex.downstream.arm_deadline(try_deadline, &c->stream.socket());
      ++c->requests;
      stats.requests.inc();
      outcome = co_await relay(ex, *c, filters, first_try, retries);
      ex.downstream.disarm_deadline();
      failure = ex.error;
    }
    first_try = false;
    if (outcome != Outcome::stale) {
      stats.try_duration.observe(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - try_start));
      record_outlier(index, retries.try_status, failure);
      if (ex.traced && *ex.trace.sampled) {
        observability::Span span;
        span.trace_high = ex.trace.trace_high;
        span.trace_low = ex.trace.trace_low;
        span.trace_128 = ex.trace.trace_128;
        span.id = client_span_id;
        span.parent_id = ex.server_span_id;
        span.server = false;
        span.debug = ex.trace.debug;
        span.timestamp_us = observability::epoch_us(try_start_wall);
        span.duration_us = observability::epoch_us(std::chrono::system_clock::now()) - span.timestamp_us;
        span.status = retries.try_status;
        span.attempt = retries.attempt;
        span.method.assign(ex.request.method_string());
        span.path.assign(ex.request.target());
        span.route.assign(route.name);
        span.cluster.assign(cluster.name());
        if (failure != ProxyError::none) span.error.assign(http::to_string(failure));
        const auto& address = cluster.endpoints()[index].address;
        observability::set_remote(span, address.address(), address.port());
        ex.tracer->record(span);
      }
    }

    switch (outcome) {
      case Outcome::done:
        pool.give_back(std::move(c));
        [[fallthrough]];
      case Outcome::done_close:
        if (retries.attempt > 1) stats.retries_succeeded.inc();
        co_return;
      case Outcome::stale:
        first_try = true;  // not a try of the request: the connection was already gone
        continue;
      case Outcome::retry:
        break;
      case Outcome::failed: {
        const bool route_timed_out = Clock::now() >= route_deadline;
        if (failure == ProxyError::timeout) stats.timeouts.inc();
        if (route_timed_out || !retries.retriable_error(failure) || !retries.grant()) {
          co_await reply_error(ex, route_timed_out ? ProxyError::timeout : failure);
          co_return;
        }
        ex.error = ProxyError::none;
        break;
      }
      case Outcome::aborted:
        if (ex.error == ProxyError::none) ex.error = ProxyError::downstream_reset;
        ex.error_reason = http::to_string(ex.error);
        ex.close_connection = true;
        co_return;
    }
    // A retry was granted: back off (full jitter), then try again.
    c.reset();
    ++retries.attempt;
    if (retries.next_backoff.count() > 0) {
      asio::steady_timer backoff(co_await asio::this_coro::executor, retries.next_backoff);
      co_await backoff.async_wait(use_tuple);
    }
  }
}

}  // namespace outrigger::router
