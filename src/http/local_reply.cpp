#include "outrigger/http/local_reply.hpp"

namespace outrigger::http {

LocalReply local_reply_for(ProxyError e) {
  switch (e) {
    case ProxyError::no_route:
      return {404, "no route matched this request\n", "no_route"};
    case ProxyError::no_healthy_upstream:
      return {503, "no healthy upstream\n", "no_healthy_upstream"};
    case ProxyError::connect_failure:
      return {503, "upstream connect error\n", "connect_failure"};
    case ProxyError::upstream_reset:
      return {502, "upstream connection closed before the response completed\n", "upstream_reset"};
    case ProxyError::upstream_protocol:
      return {502, "upstream sent an invalid response\n", "upstream_protocol_error"};
    case ProxyError::timeout:
      return {504, "upstream request timeout\n", "timeout"};
    case ProxyError::circuit_open:
      return {503, "upstream circuit breaker is open\n", "circuit_open"};
    case ProxyError::overflow:
      return {503, "upstream overflow: the cluster is at its limits\n", "overflow"};
    case ProxyError::overload:
      return {503, "overloaded: too many requests in flight\n", "overload"};
    case ProxyError::bad_request:
      return {400, "bad request\n", "bad_request", {}, {}, "text/plain", true};
    case ProxyError::downstream_reset:
    case ProxyError::none:
      break;
  }
  return {500, "internal error\n", "internal"};
}

std::string_view to_string(ProxyError e) {
  if (e == ProxyError::none) return "";
  if (e == ProxyError::downstream_reset) return "downstream_reset";
  return local_reply_for(e).reason;
}

}  // namespace outrigger::http
