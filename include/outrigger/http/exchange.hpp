// One request and its response as the filter chain and the router see it,
// whatever codec carries it. The codec owns the messages; the exchange
// borrows them and collects what the access log and the metrics report.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "outrigger/config/config.hpp"
#include "outrigger/http/headers.hpp"
#include "outrigger/http/proxy_error.hpp"
#include "outrigger/observability/stats.hpp"
#include "outrigger/observability/tracing.hpp"

namespace outrigger::http {

using RequestMessage = boost::beast::http::request<boost::beast::http::buffer_body, Fields>;
using ResponseMessage = boost::beast::http::response<boost::beast::http::buffer_body, Fields>;
using boost::asio::awaitable;
using boost::system::error_code;

struct BodyRead {
  error_code ec;
  std::size_t bytes = 0;
  bool done = false;  // the request body is complete (after these bytes)
};

// The downstream side of an exchange, implemented by a codec (HTTP/1.1 now,
// an HTTP/2 stream later).
class Downstream {
 public:
  virtual ~Downstream() = default;

  // Reads the next piece of the request body into buf. Sends `100 Continue`
  // first when the client asked for it.
  virtual awaitable<BodyRead> read_body(char* buf, std::size_t size) = 0;
  virtual bool request_body_done() const = 0;

  // Writes what msg holds: the header on the first call, then whatever
  // msg.body() points at (set body().more = false on the last piece). The
  // codec fixes the framing (Content-Length, chunked, close-delimited) and
  // the connection headers; msg must outlive the response.
  virtual awaitable<error_code> write_response(ResponseMessage& msg) = 0;
  virtual bool response_started() const = 0;

  // A response made by the proxy itself (errors, direct responses), with
  // optional extra headers (a content-type among them wins over content_type).
  virtual awaitable<error_code> send_local_reply(int status, std::string_view body, std::string_view error_reason,
                                                 std::string_view content_type = "text/plain",
                                                 std::span<const config::HeaderValue> headers = {}) = 0;

  // The route timeout: at `at`, pending reads and writes on the downstream
  // and on `upstream` fail with operation_aborted and deadline_expired() is true.
  virtual void arm_deadline(std::chrono::steady_clock::time_point at, boost::asio::ip::tcp::socket* upstream) = 0;
  virtual void disarm_deadline() = 0;
  virtual bool deadline_expired() const = 0;
};

struct JwtClaims;  // outrigger/http/jwt_claims.hpp

struct Exchange {
  Exchange(RequestMessage& req, Downstream& down, std::chrono::steady_clock::time_point start_time,
           std::chrono::system_clock::time_point start_wall_time, std::string_view client_ip)
      : request(req), downstream(down), start(start_time), start_wall(start_wall_time), downstream_ip(client_ip) {}

  RequestMessage& request;  // header as received, edited for the upstream; body streamed through downstream
  Downstream& downstream;
  std::chrono::steady_clock::time_point start;
  std::chrono::system_clock::time_point start_wall;
  std::string_view downstream_ip;
  bool request_has_body = false;                         // set by the codec
  std::optional<std::uint64_t> request_content_length;  // set by the codec; none for chunked
  // The downstream connection's TLS, set by the codec for the connection's life.
  bool downstream_tls = false;
  std::string_view peer_identity;  // the verified client certificate's SPIFFE ID (else its first DNS SAN); empty without mTLS
  std::string_view client_cert_xfcc;  // the client certificate as an x-forwarded-client-cert element (By=..;Hash=..;URI=..)

  // Filled in as the exchange proceeds.
  int status = 0;
  ProxyError error = ProxyError::none;
  std::string_view error_reason;  // set with error, or by a filter's local reply
  std::string_view route_name;
  observability::RouteStats* route_stats = nullptr;  // the matched route's series
  std::string_view cluster_name;
  std::string_view upstream_host;
  std::uint64_t bytes_received = 0;
  std::uint64_t bytes_sent = 0;
  bool close_connection = false;  // the codec must close after this exchange
  ControlHeaders control;         // the client's x-outrigger-* overrides (trusted listeners only)
  std::shared_ptr<const JwtClaims> jwt;  // set by jwt_authn when the request's token verified
  observability::ListenerSlice* listener_stats = nullptr;  // this worker's slice of the listener's series

  // Tracing: set by the pipeline when the config traces; `traced` once the
  // tracing filter has taken or started a context.
  observability::WorkerTracer* tracer = nullptr;
  bool traced = false;
  bool trace_headers_absent = false;  // none arrived: the first injection need not look for old ones
  observability::TraceContext trace;
  std::uint64_t server_span_id = 0;
};

}  // namespace outrigger::http
