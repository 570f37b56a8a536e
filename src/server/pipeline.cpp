#include "outrigger/server/pipeline.hpp"

#include <boost/beast/http/field.hpp>
#include <algorithm>
#include <random>

#include "outrigger/http/grpc.hpp"
#include "outrigger/http/path.hpp"
#include "outrigger/server/tcp_proxy.hpp"

namespace outrigger::server {

namespace bhttp = boost::beast::http;
using http::ProxyError;

namespace {
http::awaitable<void> reply_error(http::Exchange& ex, ProxyError e) {
  ex.error = e;
  const auto reply = http::local_reply_for(e);  // named: GCC 12 mishandles temporaries in co_await
  co_await http::send_local_reply(ex, reply);
}

// A request in flight on this worker, for as long as the handler runs.
class InFlight {
 public:
  explicit InFlight(observability::Gauge& g) : g_(g) { g_.add(1); }
  ~InFlight() { g_.add(-1); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  observability::Gauge& g_;
};

std::vector<std::unique_ptr<http::Filter>> make_filters(const ListenerRuntime& listener, unsigned worker) {
  std::vector<std::unique_ptr<http::Filter>> out;
  for (const auto& f : listener.filters) out.push_back(f->make_filter(worker));
  return out;
}
}  // namespace

Pipeline::Pipeline(std::shared_ptr<const Snapshot> snapshot, const ListenerRuntime& listener,
                   router::WorkerContext& worker, upstream::WorkerUpstreams& upstreams)
    : snapshot_(std::move(snapshot)),
      listener_(listener),
      worker_(worker),
      filters_(make_filters(listener, worker.index)),
      pools_(snapshot_->clusters.size()),
      listener_stats_(listener.stats->workers[worker.index]),
      max_in_flight_(snapshot_->config.overload.max_requests_per_worker) {
  auto take_cluster = [&](const upstream::Cluster& c) {
    auto& p = pools_[c.index()];
    if (!p) p = upstreams.pools_for(c);
  };
  if (listener_.tcp_cluster) take_cluster(*listener_.tcp_cluster);
  for (const auto& [sni, c] : listener_.sni_clusters) take_cluster(*c);
  if (listener_.config->original_destination)
    for (const auto& c : snapshot_->clusters) take_cluster(*c);  // any may be a connection's destination
  for (const auto& route : listener_.routes.routes()) {
    auto take = [&](const router::RouteTarget& t) { take_cluster(*t.cluster); };
    for (const auto& t : route.targets) take(t);
    if (route.fallback) take(*route.fallback);
  }
  if (snapshot_->spans && snapshot_->config.tracing)
    tracer_ = std::make_unique<observability::WorkerTracer>(*snapshot_->config.tracing, *snapshot_->spans,
                                                             worker_.index, std::random_device{}());
}

http::awaitable<void> Pipeline::handle(http::Exchange& ex) {
  ex.tracer = tracer_.get();
  ex.listener_stats = &listener_stats_;
  ex.grpc = http::is_grpc(ex.request.base());
  // Overload: shed before any other work, so that what is admitted keeps its latency.
  auto& in_flight = *worker_.requests_in_flight;
  if (max_in_flight_ && in_flight.value() >= static_cast<std::int64_t>(max_in_flight_)) {
    listener_stats_.shed_requests.inc();
    co_return co_await reply_error(ex, ProxyError::overload);
  }
  const InFlight counted(in_flight);
  forward_client_cert(ex);
  if (!normalize_target(ex)) co_return co_await reply_error(ex, ProxyError::bad_request);
  const auto* route = listener_.routes.match(ex.request);
  if (!route && ex.destination) {
    // Intercepted: the cluster the connection was going to.
    if (const auto* c = snapshot_->cluster_at(*ex.destination)) route = &listener_.destination_routes[c->index()];
  }
  const router::RouteTarget* target = nullptr;
  if (route) {
    ex.route = route->config;
    ex.route_name = route->config->name;
    target = route->targets.empty() ? nullptr : &route->pick(worker_.random);
    ex.route_stats = target ? target->stats : route->stats;
  }
  // Before the filters: the fault filter reads its control headers here, and
  // none reaches a filter (or the upstream) from a client the listener does not trust.
  ex.control = http::take_control_headers(ex.request.base(), listener_.config->trust_request_headers);
  ex.filters = &filters_;
  if (filters_.size() > 0) {
    if (auto reply = co_await filters_.on_request(ex)) co_return co_await http::send_local_reply(ex, *reply);
  }
  if (!route) co_return co_await reply_error(ex, ProxyError::no_route);
  if (!ex.upgrade.empty()) {
    const auto& allowed = route->config->upgrade;
    if (ex.upgrade == "h2c" || (ex.request_has_body && !ex.extended_connect)) {
      // (An upgrade with a body would have the upstream wait for bytes the
      // tunnel only passes after its 101: such a request goes on as a plain one.)
      ex.upgrade.clear();  // RFC 9113 §3.1: HTTP/2 by Upgrade is gone; the request goes on as HTTP/1.1
    } else if (route->config->direct_response || std::find(allowed.begin(), allowed.end(), ex.upgrade) == allowed.end()) {
      static const http::LocalReply kRefused{403, "upgrade not allowed on this route\n", "upgrade_not_allowed"};
      co_return co_await http::send_local_reply(ex, kRefused);
    }
  }
  if (const auto& direct = route->config->direct_response) {
    const http::LocalReply reply{direct->status, direct->body, {}, direct->headers};
    co_return co_await http::send_local_reply(ex, reply);
  }
  co_await proxy(ex, *route, *target);
}

http::awaitable<void> Pipeline::proxy(http::Exchange& ex, const router::CompiledRoute& route,
                                      const router::RouteTarget& target) {
  const auto* to = &target;
  upstream::Admission::Ticket ticket;
  auto verdict = to->cluster->admission().admit(ticket, ex.start, to->cluster->stats().workers[worker_.index]);
  if (verdict == upstream::Admission::Verdict::breaker_open && route.fallback) {
    // An open breaker answers at once, without touching the upstream: here
    // by another cluster...
    to = &*route.fallback;
    ex.route_stats = to->stats;
    verdict = to->cluster->admission().admit(ticket, ex.start, to->cluster->stats().workers[worker_.index]);
  }
  if (verdict == upstream::Admission::Verdict::breaker_open) {
    if (const auto& fallback = route.config->fallback; fallback && fallback->response) {
      // ... by the route's own response...
      const auto& r = *fallback->response;
      http::LocalReply reply{r.status, r.body, "circuit_open", r.headers};
      reply.reason_header = false;
      co_return co_await http::send_local_reply(ex, reply);
    }
    co_return co_await reply_error(ex, ProxyError::circuit_open);  // ... or a 503
  }
  if (verdict == upstream::Admission::Verdict::overflow) co_return co_await reply_error(ex, ProxyError::overflow);
  co_await router::forward(ex, {*route.config, *listener_.config, *to->cluster, *pools_[to->cluster->index()], ticket},
                           worker_);
  const auto now = std::chrono::steady_clock::now();
  ticket.finish(ex.status, ex.error, now, now - ex.start);
}

http::awaitable<void> Pipeline::tunnel(net::Stream& client, std::string_view identity,
                                       const boost::asio::ip::tcp::endpoint* destination) {
  // Where opaque TCP goes on this listener: the destination's cluster, the
  // listener's, or (passthrough) the destination itself.
  Verdict v;
  v.next = Verdict::Next::tcp;
  if (destination) v.destination = *destination;
  v.cluster = destination ? snapshot_->cluster_at(*destination) : nullptr;
  if (!v.cluster && destination) {
    if (listener_.config->passthrough == config::Passthrough::deny) {
      listener_stats_.passthrough_denied.inc();
      co_return;
    }
    listener_stats_.passthrough_allowed.inc();
  }
  if (!v.cluster && !destination) v.cluster = listener_.tcp_cluster.get();
  if (!v.cluster && !destination) {
    listener_stats_.tunnel(observability::TunnelKind::tcp).refused.inc();
    co_return;
  }
  TcpSession session(client, shared_from_this(), std::move(v), std::string(identity));
  co_await session.serve();
}

bool Pipeline::normalize_target(http::Exchange& ex) {
  // One spelling of the path for routes, filters and the upstream.
  switch (http::normalize_target(ex.request.target(), listener_.config->path_with_escaped_slashes_action, normalized_)) {
    case http::TargetCheck::unchanged: return true;
    case http::TargetCheck::normalized: ex.request.target(normalized_); return true;
    case http::TargetCheck::invalid: break;
  }
  return false;
}

void Pipeline::complete(http::Exchange& ex) {
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - ex.start);
  ex.listener = listener_.config->name;
  if (ex.error == ProxyError::bad_request) listener_stats_.bad_requests.inc();
  auto* series = ex.route_stats ? ex.route_stats : listener_.no_route_stats;
  series->workers[worker_.index].record(ex.status, elapsed, ex.bytes_received, ex.bytes_sent);
  if (ex.grpc && ex.grpc_status >= 0) series->workers[worker_.index].record_grpc(ex.grpc_status);
  if (listener_.config->max_authorities) count_authority(ex.request[bhttp::field::host]);
  if (ex.traced && *ex.trace.sampled) ex.tracer->record(observability::server_span(ex, ex.request, elapsed));
  if (auto* log = snapshot_->access_log.get()) observability::log_exchange(*log, ex, ex.request, elapsed);
}

// x-forwarded-client-cert, as Envoy does it: a client without a verified
// certificate never gets its own header through; with one, the listener's
// mode says whether the header is dropped, passed, appended to or replaced.
void Pipeline::forward_client_cert(http::Exchange& ex) {
  using Mode = config::ForwardClientCert;
  auto& req = ex.request;
  const auto mode = listener_.config->forward_client_cert;
  if (ex.client_cert_xfcc.empty() || mode == Mode::sanitize) {
    req.erase("x-forwarded-client-cert");
  } else if (mode == Mode::sanitize_set) {
    req.set("x-forwarded-client-cert", ex.client_cert_xfcc);
  } else if (mode == Mode::append_forward) {
    if (auto it = req.find("x-forwarded-client-cert"); it != req.end()) {
      std::string joined(it->value());
      joined += ',';
      joined += ex.client_cert_xfcc;
      req.set("x-forwarded-client-cert", joined);
    } else {
      req.set("x-forwarded-client-cert", ex.client_cert_xfcc);
    }
  }
}

void Pipeline::count_authority(std::string_view host) {
  host = host.substr(0, 255);
  for (auto& e : authorities_) {
    if (e.counter && boost::beast::iequals(e.name, host)) {
      e.counter->inc();
      return;
    }
  }
  auto& e = authorities_[next_authority_++ % authorities_.size()];
  e.name.assign(host);
  for (auto& c : e.name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  e.counter = &(*listener_.stats->authorities.find_or_add(e.name, listener_.config->max_authorities))[worker_.index];
  e.counter->inc();
}

}  // namespace outrigger::server
