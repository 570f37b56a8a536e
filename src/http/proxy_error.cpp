#include "outrigger/http/proxy_error.hpp"

namespace outrigger::http {

LocalReply local_reply_for(ProxyError e) {
  switch (e) {
    case ProxyError::no_route:
      return {404, "no_route", "no route matched this request\n"};
    case ProxyError::no_healthy_upstream:
      return {503, "no_healthy_upstream", "no healthy upstream\n"};
    case ProxyError::connect_failure:
      return {503, "connect_failure", "upstream connect error\n"};
    case ProxyError::upstream_reset:
      return {502, "upstream_reset", "upstream connection closed before the response completed\n"};
    case ProxyError::upstream_protocol:
      return {502, "upstream_protocol_error", "upstream sent an invalid response\n"};
    case ProxyError::timeout:
      return {504, "timeout", "upstream request timeout\n"};
    case ProxyError::circuit_open:
      return {503, "circuit_open", "upstream circuit breaker is open\n"};
    case ProxyError::overflow:
      return {503, "overflow", "upstream overflow: the cluster is at its limits\n"};
    case ProxyError::downstream_reset:
    case ProxyError::none:
      break;
  }
  return {500, "internal", "internal error\n"};
}

std::string_view to_string(ProxyError e) {
  if (e == ProxyError::none) return "";
  if (e == ProxyError::downstream_reset) return "downstream_reset";
  return local_reply_for(e).reason;
}

}  // namespace outrigger::http
