// Header edits every proxied message gets: hop-by-hop removal (RFC 9110
// §7.6.1), the forwarding headers, and request ids.
#pragma once

#include "outrigger/core/http_fields.hpp"
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "outrigger/core/random.hpp"

namespace outrigger::http {

using Fields = core::HttpFields;

// Removes Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
// Transfer-Encoding, Upgrade and every header the Connection header names.
void strip_hop_by_hop(Fields& f);

// The TE header names "trailers".
bool accepts_trailers(const Fields& f);

// The protocol an HTTP/1.1 upgrade request asks for (RFC 9110 §7.8: an
// Upgrade header, and "upgrade" among the Connection options), lower case;
// empty when the request asks for none.
std::string upgrade_of(const Fields& f);

// Appends the client address to x-forwarded-for (as the peers do), sets
// x-forwarded-proto to `proto` ("http" or "https": the client's connection)
// unless a trusted client sent one, and x-request-id when absent (generated).
class RequestIdGenerator;
void add_forwarding_headers(Fields& f, std::string_view client_ip, std::string_view proto, bool trusted,
                            RequestIdGenerator& ids);

// Random version-4 UUIDs from a per-worker generator (not for secrets).
class RequestIdGenerator {
 public:
  explicit RequestIdGenerator(std::uint64_t seed) : random_(seed) {}
  // Writes 36 characters to out.
  void next(char* out);

 private:
  core::Random random_;
};

// The x-outrigger-* request headers that steer the proxy for one request
// (Envoy's x-envoy-* rule): honoured only when the listener trusts its clients
// (trust_request_headers), and never sent upstream. Other x-outrigger-*
// headers pass upstream only from trusted clients. Invalid values are ignored.
//   x-outrigger-retry-on: 5xx,reset            added to the route's retry_on
//   x-outrigger-max-retries: 3                 replaces num_retries
//   x-outrigger-upstream-rq-timeout-ms: 250    replaces the route timeout (0: none)
// and those the fault filter reads, where its config lets headers decide:
//   x-outrigger-fault-delay-request: 200                  delay, milliseconds
//   x-outrigger-fault-delay-request-percentage: 50        of requests (0-100, capped by the config's)
//   x-outrigger-fault-abort-request: 503                  abort with this HTTP status (200-599)
//   x-outrigger-fault-abort-grpc-request: 14              abort with this gRPC status (0-16)
//   x-outrigger-fault-abort-request-percentage: 50        of requests (0-100, capped by the config's)
struct ControlHeaders {
  unsigned retry_on = 0;  // config::RetryOn bits
  std::optional<std::uint32_t> max_retries;
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<std::chrono::milliseconds> fault_delay;
  std::optional<double> fault_delay_percent;
  std::optional<int> fault_abort_status;
  std::optional<int> fault_abort_grpc_status;
  std::optional<double> fault_abort_percent;
  bool any() const { return retry_on || max_retries || timeout; }
};
ControlHeaders take_control_headers(Fields& f, bool trusted);

// Case-insensitive: does the comma-separated header value list contain token?
bool has_token(std::string_view list, std::string_view token);

}  // namespace outrigger::http
