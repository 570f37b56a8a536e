#include "outrigger/server/pipeline.hpp"

#include <boost/beast/http/field.hpp>

#include "outrigger/http/path.hpp"
#include <random>

namespace outrigger::server {

namespace bhttp = boost::beast::http;

Pipeline::Pipeline(std::shared_ptr<const Snapshot> snapshot, const ListenerRuntime& listener,
                   router::WorkerContext& worker)
    : snapshot_(std::move(snapshot)),
      listener_(listener),
      worker_(worker),
      listener_stats_(listener.stats->workers[worker.index]) {
  const auto workers = std::max(1u, snapshot_->config.workers);
  for (const auto& f : listener_.filters) filters_.push_back(&f->filter_for_worker(worker_.index, workers));
  if (snapshot_->spans && snapshot_->config.tracing)
    tracer_ = std::make_unique<observability::WorkerTracer>(*snapshot_->config.tracing, *snapshot_->spans,
                                                             worker_.index, std::random_device{}());
}

http::awaitable<void> Pipeline::handle(http::Exchange& ex) {
  ex.tracer = tracer_.get();
  ex.listener_stats = &listener_stats_;
  forward_client_cert(ex);
  // One spelling of the path for routes, filters and the upstream.
  switch (http::normalize_target(ex.request.target(), normalized_)) {
    case http::TargetCheck::unchanged: break;
    case http::TargetCheck::normalized: ex.request.target(normalized_); break;
    case http::TargetCheck::invalid:
      ex.close_connection = true;
      ex.error_reason = "bad_request";
      ex.status = co_await ex.downstream.send_local_reply(400, "bad request\n", "bad_request") ? 0 : 400;
      co_return;
  }
  const auto* route = listener_.routes.match(ex.request);
  if (!route) {
    co_await router::reply_error(ex, http::ProxyError::no_route);
    co_return;
  }
  ex.route_name = route->config->name;
  const router::RouteTarget* target = route->targets.empty() ? nullptr : &route->pick(worker_.random);
  ex.route_stats = target ? target->stats : route->stats;

  for (auto* f : filters_) {
    if (auto reply = f->on_request(ex)) {
      ex.error_reason = reply->reason;
      const auto ec =
          co_await ex.downstream.send_local_reply(reply->status, reply->body, reply->reason, "text/plain", reply->headers);
      ex.status = ec ? 0 : reply->status;
      co_return;
    }
  }

  // An open breaker answers at once, without touching the upstream.
  upstream::CircuitBreaker* breaker = target ? target->cluster->breaker() : nullptr;
  auto admission = upstream::CircuitBreaker::Admission::allowed;
  if (breaker && (admission = breaker->admit(ex.start)) == upstream::CircuitBreaker::Admission::rejected) {
    breaker = nullptr;
    const auto& fallback = route->config->fallback;
    if (route->fallback) {
      target = &*route->fallback;
      ex.route_stats = target->stats;
    } else if (fallback && fallback->response) {
      ex.error_reason = "circuit_open";
      const auto& r = *fallback->response;
      const auto ec = co_await ex.downstream.send_local_reply(r.status, r.body, "", "text/plain", r.headers);
      ex.status = ec ? 0 : r.status;
      ex.bytes_sent = ec ? 0 : r.body.size();
      co_return;
    } else {
      co_await router::reply_error(ex, http::ProxyError::circuit_open);
      co_return;
    }
  }

  if (const auto& direct = route->config->direct_response) {
    const auto ec = co_await ex.downstream.send_local_reply(direct->status, direct->body, "", "text/plain", direct->headers);
    ex.status = ec ? 0 : direct->status;
    ex.bytes_sent = ec ? 0 : direct->body.size();
    co_return;
  }

  ex.control = http::take_control_headers(ex.request.base(), listener_.config->trust_request_headers);
  co_await router::forward(ex, *route->config, *target, filters_, worker_);
  if (breaker) {
    const auto now = std::chrono::steady_clock::now();
    const auto slow = breaker->config().slow_call_duration;
    using Outcome = upstream::CircuitBreaker::Outcome;
    auto outcome = Outcome::success;
    if (ex.error == http::ProxyError::downstream_reset || ex.error == http::ProxyError::overflow)
      outcome = Outcome::ignored;  // says nothing about the upstream
    else if (ex.status == 0 || ex.status >= 500 || (slow.count() > 0 && now - ex.start >= slow))
      outcome = Outcome::failure;
    breaker->record(admission, outcome, now);
  }
}

void Pipeline::complete(http::Exchange& ex) {
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - ex.start);
  if (ex.route_stats) {
    ex.route_stats->workers[worker_.index].record(ex.status, elapsed, ex.bytes_received, ex.bytes_sent);
  } else {
    if (ex.error == http::ProxyError::none && ex.status >= 400) listener_stats_.bad_requests.inc();
    listener_.no_route_stats->workers[worker_.index].record(ex.status, elapsed, ex.bytes_received, ex.bytes_sent);
  }

  if (listener_.config->max_authorities) count_authority(ex.request[bhttp::field::host]);

  if (ex.traced && *ex.trace.sampled) {
    observability::Span span;
    span.trace_high = ex.trace.trace_high;
    span.trace_low = ex.trace.trace_low;
    span.trace_128 = ex.trace.trace_128;
    span.id = ex.server_span_id;
    span.parent_id = ex.trace.span_id;
    span.server = true;
    span.debug = ex.trace.debug;
    span.timestamp_us = observability::epoch_us(ex.start_wall);
    span.duration_us = elapsed.count();
    span.status = ex.status;
    span.method.assign(ex.request.method_string());
    span.path.assign(ex.request.target());
    span.route.assign(ex.route_name);
    span.cluster.assign(ex.cluster_name);
    span.error.assign(ex.error_reason);
    span.peer_identity.assign(ex.peer_identity);
    boost::system::error_code ec;
    const auto ip = boost::asio::ip::make_address(ex.downstream_ip, ec);
    if (!ec) observability::set_remote(span, ip, 0);
    ex.tracer->record(span);
  }

  if (auto* log = snapshot_->access_log.get()) {
    const auto& req = ex.request;
    observability::AccessLogEntry e;
    e.start_time = ex.start_wall;
    e.duration = elapsed;
    e.method = req.method_string();
    e.path = req.target();
    e.protocol = req.version() == 10 ? "HTTP/1.0" : "HTTP/1.1";
    e.response_code = ex.status;
    e.error = ex.error_reason;
    e.bytes_received = ex.bytes_received;
    e.bytes_sent = ex.bytes_sent;
    e.forwarded_for = req["x-forwarded-for"];
    e.user_agent = req[bhttp::field::user_agent];
    e.request_id = req["x-request-id"];
    e.authority = req[bhttp::field::host];
    e.upstream_host = ex.upstream_host;
    e.route = ex.route_name;
    e.cluster = ex.cluster_name;
    e.listener = listener_.config->name;
    e.downstream_address = ex.downstream_ip;
    observability::HexId trace_id, span_id;  // in place: no allocation
    if (ex.traced) {
      trace_id = observability::hex_trace_id(ex.trace);
      span_id = observability::hex_id(ex.server_span_id);
      e.trace_id = trace_id.view();
      e.span_id = span_id.view();
    }
    e.peer_identity = ex.peer_identity;
    log->write(e);
  }
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
