// What happened to one exchange, as the access log, the spans and the
// metrics report it (Envoy's StreamInfo). The codec, the pipeline, the
// filters and the router fill it in as the exchange proceeds;
// observability turns it into a log line and spans when it ends. It lives in
// observability so that the log and span builders need not know the codecs:
// http::Exchange is this record plus the messages and the codec.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include <boost/beast/http/message.hpp>

#include "outrigger/core/http_fields.hpp"
#include "outrigger/observability/tracing.hpp"

namespace outrigger::observability {

struct ListenerSlice;
struct RouteStats;

// A request header whatever codec carried it (HTTP/2 pseudo-headers become
// its method, target and Host).
using RequestHeader = boost::beast::http::request_header<core::HttpFields>;

struct ExchangeRecord {
  std::chrono::steady_clock::time_point start;
  std::chrono::system_clock::time_point start_wall;
  std::string_view protocol = "HTTP/1.1";  // as the client spoke it
  bool grpc = false;      // a gRPC request (content-type application/grpc)
  int grpc_status = -1;   // the response's grpc-status (header or trailer); -1: none
  std::string_view listener;
  std::string_view downstream_ip;
  bool downstream_tls = false;
  std::string_view peer_identity;     // the verified client certificate's SPIFFE ID (else its first DNS SAN)
  std::string_view client_cert_xfcc;  // that certificate as an x-forwarded-client-cert element

  int status = 0;                 // the status sent downstream; 0: none was
  std::string_view error_reason;  // x-outrigger-error, or why the exchange failed
  std::string_view route_name;
  std::string_view cluster_name;
  std::string_view upstream_host;
  std::uint64_t bytes_received = 0;  // request body bytes from the client
  std::uint64_t bytes_sent = 0;      // response body bytes to the client

  RouteStats* route_stats = nullptr;      // the matched route's series (null: no route)
  ListenerSlice* listener_stats = nullptr;  // this worker's slice of the listener's series

  // Tracing: the tracer when the config traces; `traced` once the tracing
  // filter has taken or started a context.
  WorkerTracer* tracer = nullptr;
  bool traced = false;
  bool trace_headers_absent = false;  // none arrived: the first injection need not look for old ones
  TraceContext trace;
  std::uint64_t server_span_id = 0;
};

// The exchange's SERVER span (call when it ends; `elapsed` since start).
Span server_span(const ExchangeRecord& r, const RequestHeader& request, std::chrono::microseconds elapsed);

// One try of the exchange upstream, as a CLIENT span.
struct TryRecord {
  std::uint64_t span_id = 0;
  std::chrono::system_clock::time_point start_wall;
  std::uint32_t attempt = 1;
  int status = 0;                // 0: no response
  std::string_view error;        // why the try failed, empty when it did not
  std::string_view cluster;
  boost::asio::ip::address remote_ip;
  std::uint16_t remote_port = 0;
};
Span client_span(const ExchangeRecord& r, const RequestHeader& request, const TryRecord& t,
                 std::chrono::system_clock::time_point end_wall);

}  // namespace outrigger::observability
