// The one place where the proxy's own failures become responses: a status,
// a short body and the `x-outrigger-error` reason an operator can grep for.
#pragma once

#include <string_view>

namespace outrigger::http {

enum class ProxyError {
  none,
  no_route,             // 404: no route matched
  no_healthy_upstream,  // 503: the cluster has no endpoint to try
  connect_failure,      // 503: connecting to the endpoint failed or timed out
  upstream_reset,       // 502: the upstream closed or reset before a complete response
  upstream_protocol,    // 502: the upstream's response was not valid HTTP/1.1
  timeout,              // 504: the route timeout fired before the response started
  overflow,             // 503: a circuit-breaker threshold of the cluster was reached
  circuit_open,         // 503: the cluster's breaker is open and the route has no fallback
  downstream_reset,     // the client went away (no response possible)
};

struct LocalReply {
  int status;
  std::string_view reason;  // x-outrigger-error
  std::string_view body;
};

LocalReply local_reply_for(ProxyError e);
std::string_view to_string(ProxyError e);

}  // namespace outrigger::http
