#include "outrigger/router/router.hpp"

#include "outrigger/http/filter.hpp"
#include "outrigger/http/grpc.hpp"
#include "outrigger/router/relay.hpp"
#include "outrigger/router/retry_state.hpp"
#include "outrigger/upstream/cluster.hpp"
#include "outrigger/upstream/connection_pool.hpp"
#include "upgrade.hpp"

namespace outrigger::router {

namespace bhttp = boost::beast::http;
using Clock = std::chrono::steady_clock;
using http::ProxyError;

namespace {

// Edits the request header for the upstream hop.
void prepare_request(http::Exchange& ex, const Destination& to, WorkerContext& worker) {
  auto& req = ex.request;
  // TE is hop-by-hop, but "trailers" in it says the client takes trailers,
  // and so does the proxy: it goes on (gRPC servers insist on it).
  const bool te_trailers = http::accepts_trailers(req.base());
  http::strip_hop_by_hop(req.base());
  if (te_trailers) req.set(bhttp::field::te, "trailers");
  if (ex.request_has_body && !ex.request_content_length) req.set(bhttp::field::transfer_encoding, "chunked");
  http::add_forwarding_headers(req.base(), ex.downstream_ip, ex.downstream_tls ? "https" : "http",
                               to.listener.trust_request_headers, worker.request_ids);
  for (const auto& name : to.route.request_headers_to_remove) req.erase(name);
  for (const auto& h : to.route.request_headers_to_add) req.set(h.name, h.value);
  req.version(11);
}

enum class Next { done, fresh_try, retry, give_up };

// What one try leaves behind: the try histogram, outlier detection against
// its endpoint, and its CLIENT span.
void record_try(http::Exchange& ex, const Destination& to, std::size_t endpoint, const RetryState& retry, int status,
                Clock::time_point start, const observability::TryRecord& span) {
  auto& stats = to.pools.stats();
  stats.try_duration.observe(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start));
  if (auto* outlier = to.cluster.outlier_detector()) {
    using Result = upstream::OutlierDetector::Result;
    const auto e = ex.error;
    if (e == ProxyError::connect_failure || e == ProxyError::upstream_reset || e == ProxyError::upstream_protocol ||
        e == ProxyError::timeout) {
      outlier->record(endpoint, Result::gateway_failure, Clock::now());  // also when the response had started
    } else if (status != 0) {
      outlier->record(endpoint, upstream::OutlierDetector::classify(status), Clock::now());
    }  // else the client went away, or a local limit: nothing to say about the endpoint
  }
  if (ex.traced && *ex.trace.sampled) {
    auto t = span;
    t.status = status;
    t.attempt = retry.attempt();
    t.error = http::to_string(ex.error);
    ex.tracer->record(observability::client_span(ex, ex.request, t, std::chrono::system_clock::now()));
  }
}

// One try: an endpoint, a connection, the request out, the response in.
http::awaitable<Next> try_once(http::Exchange& ex, Destination& to, RetryState& retry, WorkerContext& worker,
                               std::size_t endpoint) {
  auto& stats = to.pools.stats();
  const auto& address = to.cluster.endpoints()[endpoint];
  ex.upstream_host = address.name;
  to.pools.begin_request(endpoint);
  struct EndRequest {
    upstream::ClusterPools& pools;
    std::size_t i;
    ~EndRequest() { pools.end_request(i); }
  } end_request{to.pools, endpoint};

  const auto start = Clock::now();
  observability::TryRecord span{0, {}, 1, 0, {}, to.cluster.name(), address.address.address(), address.address.port()};
  if (ex.traced) {  // each try is a CLIENT span, a child of the exchange's SERVER span
    span.span_id = ex.tracer->next_id();
    observability::inject(ex.request.base(), ex.trace, span.span_id, ex.server_span_id, ex.trace.format,
                          ex.trace_headers_absent);
    ex.trace_headers_absent = false;  // from the second try on, the headers are ours to replace
    span.start_wall = std::chrono::system_clock::now();
  }
  if (retry.active()) ex.request.set("x-outrigger-attempt-count", std::to_string(retry.attempt()));

  const auto deadline = retry.try_deadline(start);
  // The upstream learns how long this try has, not how long the client would have waited.
  if (ex.grpc && deadline != Clock::time_point::max())
    ex.request.set("grpc-timeout", http::format_grpc_timeout(
                                       std::chrono::duration_cast<std::chrono::milliseconds>(deadline - start)));
  auto connect_timeout = to.cluster.config().connect_timeout;
  if (deadline != Clock::time_point::max())
    connect_timeout = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - start),
                                 std::chrono::milliseconds(1), connect_timeout);
  auto acquired = co_await to.pools.acquire(endpoint, to.cluster.admission(), start + connect_timeout, to.cluster.tls());
  using Failure = upstream::Acquired::Failure;
  if (acquired.failure == Failure::overflow || acquired.failure == Failure::stopped) {
    ex.error = acquired.failure == Failure::overflow ? ProxyError::overflow : ProxyError::downstream_reset;
    co_return Next::give_up;
  }
  TryResult result = TryResult::failed;
  int status = 0;
  if (!acquired.lease) {
    ex.error = Clock::now() >= deadline ? ProxyError::timeout : ProxyError::connect_failure;
  } else {
    auto& upstream = acquired.lease.request();
    upstream.set_deadline(deadline);
    result = co_await send_request(ex, upstream, retry);
    if (result == TryResult::ok) result = co_await receive_response(ex, upstream, retry);
    std::string held;  // a gRPC response held back while its status may ask for a retry
    bool held_done = false;
    if (result == TryResult::ok) {
      status = upstream.response().result_int();
      bool again = retry.retriable(status);
      if (!again && ex.grpc && retry.holds_grpc_responses()) {
        int grpc_status = http::grpc_status_of(upstream.response().base());  // trailers-only
        if (grpc_status < 0 && status == 200) {
          // The status comes in the trailers, after the messages: hold a
          // bounded amount of them so that a retriable status can still be
          // retried (nothing went to the client yet).
          result = co_await hold_response(ex, upstream, retry.grpc_hold_limit(), held, held_done);
          if (held_done && upstream.response_trailers()) grpc_status = http::grpc_status_of(*upstream.response_trailers());
        }
        again = result == TryResult::ok && retry.retriable_grpc(grpc_status);
      }
      if (again && retry.can_resend(ex) && retry.grant(to.pools.retry_budget(), to.ticket, stats, worker.random)) {
        record_try(ex, to, endpoint, retry, status, start, span);
        co_return Next::retry;  // nothing went downstream
      }
      if (result == TryResult::ok) result = co_await relay_response(ex, upstream, held, held_done);
    }
  }
  if (result == TryResult::not_processed) co_return Next::fresh_try;  // not a try: the connection was gone
  record_try(ex, to, endpoint, retry, status, start, span);
  if (result == TryResult::ok) {
    if (retry.attempt() > 1) stats.retries_succeeded.inc();
    co_return Next::done;
  }
  if (result == TryResult::aborted) {  // nothing more can be said to this client
    if (ex.error == ProxyError::none) ex.error = ProxyError::downstream_reset;
    ex.error_reason = http::to_string(ex.error);
    ex.close_connection = true;
    co_return Next::done;
  }
  if (ex.error == ProxyError::timeout) stats.timeouts.inc();
  if (Clock::now() >= retry.route_deadline() || !retry.retriable(ex.error) || !retry.can_resend(ex) ||
      !retry.grant(to.pools.retry_budget(), to.ticket, stats, worker.random))
    co_return Next::give_up;
  ex.error = ProxyError::none;
  co_return Next::retry;
}

}  // namespace

http::awaitable<void> forward(http::Exchange& ex, Destination to, WorkerContext& worker) {
  ex.cluster_name = to.cluster.name();
  prepare_request(ex, to, worker);
  auto timeout = ex.control.timeout.value_or(to.route.timeout);
  if (ex.grpc) {  // the client's deadline caps the route's
    if (auto it = ex.request.find("grpc-timeout"); it != ex.request.end()) {
      if (const auto t = http::parse_grpc_timeout(it->value()); t && (timeout.count() == 0 || *t < timeout))
        timeout = *t;
    }
  }
  const auto route_deadline = timeout.count() > 0 ? ex.start + timeout : Clock::time_point::max();
  if (route_deadline != Clock::time_point::max()) ex.downstream.arm_deadline(route_deadline);
  if (!ex.upgrade.empty()) co_return co_await forward_upgrade(ex, to, route_deadline);  // no retries, a tunnel after

  RetryState retry(ex, to.route, route_deadline);
  if (const auto e = retry.buffers(ex) ? co_await retry.buffer_body(ex) : ProxyError::none; e != ProxyError::none)
    co_return co_await answer_failure(ex, e);
  to.pools.retry_budget().record_request(ex.start);

  const bool guarded = to.cluster.outlier_detector() || to.cluster.config().health_check;
  upstream::TriedEndpoints tried;
  for (;;) {
    const auto endpoint = to.pools.choose(to.cluster.endpoint_state(), guarded, tried);
    if (!endpoint) {
      ex.error = ProxyError::no_healthy_upstream;
      break;
    }
    const auto next = co_await try_once(ex, to, retry, worker, *endpoint);
    if (next == Next::done) co_return;
    if (next == Next::give_up) break;
    if (next == Next::retry) {
      retry.next_attempt();
      if (retry.backoff().count() > 0) co_await to.pools.sleep(retry.backoff());
    }
  }
  // Giving up. Past the route deadline, an upstream failure is a timeout (504).
  const auto e = ex.error;
  if (Clock::now() >= route_deadline &&
      (e == ProxyError::connect_failure || e == ProxyError::upstream_reset || e == ProxyError::upstream_protocol))
    ex.error = ProxyError::timeout;
  co_await answer_failure(ex, ex.error);
}

}  // namespace outrigger::router
