// gRPC over HTTP/2, as the proxy needs to know it (the gRPC PROTOCOL-HTTP2
// spec): which requests are gRPC, their grpc-timeout, the grpc-status of a
// response, and the status the proxy's own errors map to.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "outrigger/http/headers.hpp"

namespace outrigger::http {

// gRPC status codes the proxy names itself.
enum class GrpcStatus : int {
  ok = 0,
  cancelled = 1,
  unknown = 2,
  deadline_exceeded = 4,
  resource_exhausted = 8,
  permission_denied = 7,
  unimplemented = 12,
  internal = 13,
  unavailable = 14,
  unauthenticated = 16,
};
inline constexpr int kGrpcStatusCount = 17;  // 0 (OK) .. 16 (UNAUTHENTICATED)

// A request whose content-type is application/grpc (or application/grpc+proto, ...).
bool is_grpc(const Fields& request);
// grpc-timeout: up to 8 digits and a unit (H, M, S, m, u, n), rounded up to
// a millisecond; nullopt when absent or malformed (then it is ignored).
std::optional<std::chrono::milliseconds> parse_grpc_timeout(std::string_view value);
// The value for what is left of a deadline ("250m", at least "1m").
std::string format_grpc_timeout(std::chrono::milliseconds left);
// The grpc-status in `fields` (0..16), or -1 when absent or not a number.
int grpc_status_of(const Fields& fields);
// The gRPC status for a response the proxy made with `http_status` (the
// spec's mapping; 504 is the proxy's own timeout: DEADLINE_EXCEEDED).
GrpcStatus grpc_status_for_http(int http_status);
// grpc-message's percent-encoding (anything outside printable ASCII, and '%').
std::string grpc_message_encode(std::string_view text);

}  // namespace outrigger::http
