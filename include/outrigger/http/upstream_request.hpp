// One try of a request toward an upstream endpoint, whatever protocol carries
// it (Pingora's upstream session): HTTP/1.1 on a pooled connection now
// (http/http1_client.hpp), an HTTP/2 stream next. The router streams the
// request through it and reads the response from it; it never sees a socket.
// Each try has its own deadline (the per-try timeout, capped by the route's).
#pragma once

#include <chrono>
#include <cstdint>

#include "outrigger/http/exchange.hpp"

namespace outrigger::http {

enum class UpstreamError : std::uint8_t {
  none,
  not_processed,  // the upstream took none of the request (a stale keep-alive connection): safe to send again
  reset,          // the connection closed or reset before a complete response
  protocol,       // the response was not valid HTTP
  timeout,        // this try's deadline passed
};

struct UpstreamBodyRead {
  UpstreamError error = UpstreamError::none;
  std::size_t bytes = 0;
  bool done = false;
};

class UpstreamRequest {
 public:
  virtual ~UpstreamRequest() = default;

  // At `at`, whatever this try waits for fails with UpstreamError::timeout.
  virtual void set_deadline(std::chrono::steady_clock::time_point at) = 0;
  // Writes what req holds: the header on the first call, then whatever
  // req.body() points at (body().more = false on the last piece, with the
  // request's `trailers`, or null).
  virtual awaitable<UpstreamError> write_request(RequestMessage& req, const Fields* trailers) = 0;
  // Reads up to the final response header (interim 1xx responses are
  // dropped, but 101), then response() holds it.
  virtual awaitable<UpstreamError> read_response_header() = 0;
  virtual ResponseMessage& response() = 0;
  // The next piece of the response body, into buf.
  virtual awaitable<UpstreamBodyRead> read_response_body(char* buf, std::size_t size) = 0;
  // The response's trailer fields, once its body is done; null when none came.
  virtual const Fields* response_trailers() const = 0;
  // Gives the request up: the upstream must never see it complete (for a
  // request body whose framing broke mid-stream), and nothing is reused.
  virtual void abandon() = 0;
  // Whether it ran on a connection that earlier requests used.
  virtual bool reused() const = 0;
};

}  // namespace outrigger::http
