// The HTTP/1.1 codec toward an upstream: one connection, one request at a
// time (Beast's serializer and parser), each request an UpstreamRequest.
// The pool (upstream/connection_pool.hpp) owns these and hands them out;
// this class knows the protocol, the pool knows the slots and the reuse.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/serializer.hpp>
#include <optional>

#include "outrigger/core/buffer_pool.hpp"
#include "outrigger/http/body_parse.hpp"
#include "outrigger/core/deadline_queue.hpp"
#include "outrigger/http/upstream_request.hpp"
#include "outrigger/net/stream.hpp"

namespace outrigger::http {

class Http1Client final : public UpstreamRequest {
 public:
  Http1Client(const boost::asio::any_io_executor& ex, core::DeadlineQueue& deadlines);
  ~Http1Client() override;

  net::Stream& stream() { return stream_; }
  // A request starts; `reused`: the connection carried one before.
  void begin(bool reused);
  // The request is over. True when the connection stopped at a message
  // boundary and may carry another.
  bool end();
  // Unread bytes while idle mean the peer sent something unasked.
  bool has_unread_bytes() const { return buffer_.size() > 0; }
  // Bytes read past the response header (after a 101: the tunnel's first).
  std::string_view unread() const {
    const auto d = buffer_.data();
    return {static_cast<const char*>(d.data()), d.size()};
  }
  void release_buffer() { buffer_.shrink_to_fit(); }

  // UpstreamRequest
  void set_deadline(std::chrono::steady_clock::time_point at) override;
  awaitable<UpstreamError> write_request(RequestMessage& req, const Fields* trailers) override;
  awaitable<UpstreamError> read_response_header() override;
  ResponseMessage& response() override { return parser_->get(); }
  awaitable<UpstreamBodyRead> read_response_body(char* buf, std::size_t size) override;
  const Fields* response_trailers() const override;
  void abandon() override;
  bool reused() const override { return reused_; }

 private:
  using Serializer = boost::beast::http::request_serializer<boost::beast::http::buffer_body, Fields>;
  using Parser = boost::beast::http::response_parser<boost::beast::http::buffer_body, core::SmallAllocator<char>>;

  UpstreamError failure() const;

  net::Stream stream_;  // TCP, or TLS when the cluster has a `tls` block
  boost::beast::basic_flat_buffer<core::PooledAllocator<char>> buffer_;
  core::Deadline deadline_;  // after stream_: disarmed before the socket goes
  std::optional<Serializer> serializer_;
  std::optional<Parser> parser_;
  bool reused_ = false;
  bool head_ = false;           // the request is a HEAD: the response has no body
  bool got_response_ = false;   // a byte of the response arrived
  bool abandoned_ = false;
  bool chunked_request_ = false;
  TrailerMark<Parser> trailer_mark_;  // where a chunked response's trailers start
  Fields trailers_;
};

}  // namespace outrigger::http
