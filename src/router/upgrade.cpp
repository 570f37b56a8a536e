#include "upgrade.hpp"

#include "outrigger/http/filter.hpp"
#include "outrigger/net/tunnel.hpp"
#include "outrigger/router/relay.hpp"
#include "outrigger/upstream/cluster.hpp"
#include "outrigger/upstream/connection_pool.hpp"

namespace outrigger::router {

namespace bhttp = boost::beast::http;
using Clock = std::chrono::steady_clock;
using http::ProxyError;

http::awaitable<void> forward_upgrade(http::Exchange& ex, Destination& to, Clock::time_point deadline) {
  if (to.cluster.config().protocol == config::Protocol::http2) {
    // An HTTP/2 endpoint would need an extended CONNECT of its own.
    static const http::LocalReply kNoUpgrade{502, "upgrades need an HTTP/1.1 cluster\n", "upgrade_failed"};
    ex.error = ProxyError::upstream_protocol;
    co_await http::send_local_reply(ex, kNoUpgrade);
    co_return;
  }
  // The hop-by-hop fields went in prepare_request; these two are the point.
  auto& req = ex.request;
  req.set(bhttp::field::upgrade, ex.upgrade);
  req.set(bhttp::field::connection, "upgrade");
  req.erase(bhttp::field::transfer_encoding);
  req.body().data = nullptr;
  req.body().size = 0;
  req.body().more = false;

  // A connection of its own; on a connect failure, the next endpoint.
  const bool guarded = to.cluster.outlier_detector() || to.cluster.config().health_check;
  upstream::TriedEndpoints tried;
  std::unique_ptr<upstream::UpstreamConnection> conn;
  for (std::size_t attempt = 0; attempt < std::min<std::size_t>(3, to.cluster.endpoints().size()) && !conn; ++attempt) {
    const auto endpoint = to.pools.choose(to.cluster.endpoint_state(), guarded, tried);
    if (!endpoint) {
      if (ex.error == ProxyError::none) ex.error = ProxyError::no_healthy_upstream;
      break;
    }
    ex.upstream_host = to.cluster.endpoints()[*endpoint].name;
    upstream::Acquired::Failure failure;
    // Over TLS, HTTP/1.1 only: an upgrade is an HTTP/1.1 affair (a cluster
    // with `protocol: auto` would offer h2 too).
    conn = co_await to.pools.connect_exclusive(*endpoint, to.cluster.admission(),
                                               Clock::now() + to.cluster.config().connect_timeout, to.cluster.tls(),
                                               failure, to.cluster.tls() ? std::string_view("\x08http/1.1") : std::string_view());
    if (conn) break;
    if (failure == upstream::Acquired::Failure::overflow) co_return co_await answer_failure(ex, ProxyError::overflow);
    if (failure == upstream::Acquired::Failure::stopped) co_return co_await answer_failure(ex, ProxyError::downstream_reset);
    ex.error = ProxyError::connect_failure;
    if (auto* outlier = to.cluster.outlier_detector())
      outlier->record(*endpoint, upstream::OutlierDetector::Result::gateway_failure, Clock::now());
  }
  if (!conn) co_return co_await answer_failure(ex, ex.error);
  ex.error = ProxyError::none;

  auto& up = conn->codec;
  up.set_deadline(deadline);
  if (auto e = co_await up.write_request(req, nullptr); e != http::UpstreamError::none)
    co_return co_await answer_failure(ex, proxy_error(e));
  if (auto e = co_await up.read_response_header(); e != http::UpstreamError::none)
    co_return co_await answer_failure(ex, proxy_error(e));
  auto& res = up.response();
  if (res.result_int() != 101) {
    // Refused (a 400 for a bad key, a 403, a plain 200): an ordinary response.
    const auto r = co_await relay_response(ex, up);
    if (r == TryResult::failed) co_await answer_failure(ex, ex.error);
    if (r == TryResult::aborted) ex.close_connection = true;
    co_return;
  }

  // Switching protocols. The tunnel has no deadline but its idle timeout.
  if (ex.filters) ex.filters->on_response(ex, res.base());
  ex.status = 101;
  ex.downstream.disarm_deadline();
  up.set_deadline(Clock::time_point::max());
  res.body().data = nullptr;
  res.body().size = 0;
  if (ex.extended_connect) {
    // RFC 8441 §5: the HTTP/2 client learns of the switch by a 200.
    res.result(bhttp::status::ok);
    res.erase(bhttp::field::upgrade);
    res.erase(bhttp::field::connection);
    res.erase(bhttp::field::sec_websocket_accept);
    res.body().more = true;
    ex.status = 200;
  } else {
    res.body().more = false;
  }
  if (co_await ex.downstream.write_response(res, nullptr) != http::StreamError::none) {
    ex.error = ProxyError::downstream_reset;
    ex.error_reason = http::to_string(ex.error);
    ex.close_connection = true;
    co_return;
  }
  std::string_view pending;
  auto* client = ex.downstream.tunnel(pending);
  ex.close_connection = true;  // the connection (HTTP/1.1) ends with the tunnel
  if (!client) co_return;
  auto& stats = ex.listener_stats->tunnel(observability::TunnelKind::upgrade);
  stats.total.inc();
  stats.active.add(1);
  net::StreamEnd server(up.stream());
  const auto opened = Clock::now();
  const auto r = co_await net::relay(*client, server, to.listener.tunnel_idle_timeout, pending, up.unread());
  stats.active.add(-1);
  stats.received.inc(r.a_to_b);
  stats.sent.inc(r.b_to_a);
  stats.duration.observe(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - opened));
  if (r.end == net::TunnelResult::End::idle_timeout) {
    stats.idle_timeouts.inc();
    ex.error_reason = "tunnel_idle_timeout";
  }
  ex.bytes_received += r.a_to_b;
  ex.bytes_sent += r.b_to_a;
}

}  // namespace outrigger::router
