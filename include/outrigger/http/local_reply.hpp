// Responses the proxy makes itself, and the one place where its own failures
// become responses: a status, a short body and the `x-outrigger-error`
// reason an operator can grep for (linkerd2-proxy's rule).
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "outrigger/config/config.hpp"

namespace outrigger::http {

enum class ProxyError {
  none,
  no_route,             // 404: no route matched
  no_healthy_upstream,  // 503: the cluster has no endpoint to try
  connect_failure,      // 503: connecting to the endpoint failed or timed out
  upstream_reset,       // 502: the upstream closed or reset before a complete response
  upstream_protocol,    // 502: the upstream's response was not valid HTTP
  timeout,              // 504: the route timeout fired before the response started
  overflow,             // 503: a circuit-breaker threshold of the cluster was reached
  circuit_open,         // 503: the cluster's breaker is open and the route has no fallback
  overload,             // 503: the worker had overload.max_requests_per_worker requests in flight
  bad_request,          // 400: the request's body framing broke after its header was accepted
  downstream_reset,     // the client went away (no response possible)
};

// A response the proxy answers with. Views must outlive the exchange: static
// text or config memory, never memory a filter reuses for the next request
// (a reply may be written after other requests ran on the worker). A value
// made for this reply alone goes into `extra`, which the reply owns.
struct LocalReply {
  int status = 500;
  std::string_view body;
  std::string_view reason;  // x-outrigger-error; empty: none
  std::span<const config::HeaderValue> headers;
  config::HeaderValue extra;  // one more header (e.g. retry-after); empty name: none
  std::string_view content_type = "text/plain";
  bool close = false;        // close the connection after it
  bool reason_header = true;  // false: the reason goes to the log only (a route's own fallback response)
  // >= 0: a gRPC answer (trailers-only: HTTP 200, this grpc-status, the body
  // as grpc-message) whatever the request was (the fault filter's grpc_status).
  int grpc_status = -1;
};

LocalReply local_reply_for(ProxyError e);
std::string_view to_string(ProxyError e);

}  // namespace outrigger::http
