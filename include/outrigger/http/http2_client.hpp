// The HTTP/2 codec toward an upstream: one nghttp2 client session on one
// connection, carrying many requests at once, each an Http2ClientStream
// (an UpstreamRequest, like an HTTP/1.1 request on Http1Client). The pool
// (upstream/connection_pool.hpp) owns the connection and its slot; this
// class knows the protocol: streams, flow control, SETTINGS, GOAWAY, PING.
//
// Like the downstream session (http2_session.hpp), two coroutines serve the
// connection (Http2Transport), one reading into nghttp2 and one writing.
// A response body is read from a per-stream buffer, and the stream's window
// opens only as the router takes the bytes; a request body waits in a
// bounded buffer until the upstream's window lets it go.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "outrigger/config/config.hpp"
#include "outrigger/core/buffer_pool.hpp"
#include "outrigger/core/deadline_queue.hpp"
#include "outrigger/core/wakeup.hpp"
#include "outrigger/http/http2_transport.hpp"
#include "outrigger/http/upstream_request.hpp"
#include "outrigger/net/stream.hpp"
#include "outrigger/observability/stats.hpp"

struct nghttp2_session;

namespace outrigger::http {

class Http2ClientStream;

// What the connection tells its owner (the endpoint's pool).
class Http2ClientEvents {
 public:
  virtual ~Http2ClientEvents() = default;
  // A stream ended: there is room for another.
  virtual void stream_released() = 0;
};

class Http2Client final : private Http2Transport {
 public:
  using Clock = std::chrono::steady_clock;
  // `settings`: the cluster's http2 block; `tls`: the :scheme is https.
  // `max_streams_total`: streams this connection carries in its life (0: no limit).
  Http2Client(net::Stream& stream, core::DeadlineQueue& deadlines, const config::Http2& settings, bool tls,
              std::uint32_t max_streams_total, observability::Http2Slice* stats, Http2ClientEvents* events);
  ~Http2Client();
  Http2Client(const Http2Client&) = delete;
  Http2Client& operator=(const Http2Client&) = delete;

  // Serves the connection until it ends (closed by either side, GOAWAY and
  // its last stream done, a PING unanswered); every stream has been told.
  boost::asio::awaitable<void> run();

  // A new stream may start now: the connection is up, not going away, and
  // below both its own and the upstream's max_concurrent_streams.
  bool accepts_streams() const;
  std::uint32_t active_streams() const { return active_; }
  // How many streams it could carry at once (for requests waiting on a connect).
  std::uint32_t stream_limit() const;
  bool closed() const { return closed_; }
  Clock::time_point idle_since() const { return idle_since_; }
  // A request on a new stream (sent with its first write_request).
  std::unique_ptr<Http2ClientStream> open_stream();

  // The pool's sweep: PING keepalive and its timeout.
  void sweep(Clock::time_point now);
  // Ends the connection: GOAWAY, then the socket closes once it is sent.
  void close();
  // The owner is gone (a config reload dropped the pool): nothing is
  // reported any more, and the connection closes now.
  void orphan();

 private:
  friend class Http2ClientStream;
  struct Callbacks;

  // Http2Transport
  bool quiet() const override { return active_ == 0; }
  void bytes_read() override { last_read_ = Clock::now(); }
  void fail(int nghttp2_error) override;
  void end_writes() override { close_socket(); }
  void stream_done(Http2ClientStream& s);
  void count(observability::Http2Event e) {
    if (stats_) stats_->count(e);
  }
  void close_socket();

  core::DeadlineQueue& deadlines_;
  config::Http2 settings_;
  bool tls_;
  std::uint32_t max_streams_total_;
  observability::Http2Slice* stats_;
  Http2ClientEvents* events_;
  std::vector<Http2ClientStream*> streams_;  // alive; told when the connection goes
  std::uint32_t active_ = 0;                 // streams handed out and not yet done
  std::uint32_t opened_ = 0;                 // streams handed out in its life
  bool closed_ = false;                      // run() has ended
  bool going_away_ = false;                  // GOAWAY either way: no new streams
  Clock::time_point idle_since_;
  Clock::time_point last_read_;
  Clock::time_point ping_sent_ = Clock::time_point::max();  // an unanswered keepalive PING
};

class Http2ClientStream final : public UpstreamRequest {
 public:
  using Clock = std::chrono::steady_clock;
  Http2ClientStream(Http2Client& client, bool reused);
  ~Http2ClientStream() override;

  // UpstreamRequest
  void set_deadline(Clock::time_point at) override;
  awaitable<UpstreamError> write_request(RequestMessage& req, const Fields* trailers) override;
  awaitable<UpstreamError> read_response_header() override;
  ResponseMessage& response() override { return response_; }
  awaitable<UpstreamBodyRead> read_response_body(char* buf, std::size_t size) override;
  const Fields* response_trailers() const override { return has_trailers_ ? &trailers_ : nullptr; }
  void abandon() override;
  bool reused() const override { return reused_; }

 private:
  friend class Http2Client;
  friend struct Http2Client::Callbacks;
  struct Provider;  // nghttp2's data source for the request body

  bool submit(RequestMessage& req, bool with_body);
  UpstreamError failure() const;
  static void on_deadline(void* self);
  void end_body(std::uint32_t* flags);
  // From the client's nghttp2 callbacks.
  void on_header(std::string_view name, std::string_view value);
  void on_headers_end(bool end_stream);
  void on_data(std::string_view data);
  void on_closed(std::uint32_t error_code);
  void on_not_sent();
  void on_connection_lost(bool unprocessed);

  Http2Client& client_;
  std::int32_t id_ = -1;  // set once submitted
  bool reused_;
  ResponseMessage response_;
  Fields trailers_;
  bool has_trailers_ = false;
  bool final_ = false;        // the final (non-1xx) response header is complete
  bool in_header_ = false;    // a header block is arriving
  bool interim_ = false;      // the block arriving is a 1xx
  std::size_t header_bytes_ = 0;
  bool too_large_ = false;
  std::vector<std::pair<std::string, std::string>> request_trailers_;
  std::string out_;           // request body queued for nghttp2
  std::size_t out_offset_ = 0;
  bool out_eof_ = false;
  bool head_ = false;
  std::string in_;            // response body received and not read yet
  std::size_t in_offset_ = 0;
  bool remote_ended_ = false;  // END_STREAM from the upstream
  bool closed_ = false;        // nghttp2 closed it
  bool refused_ = false;       // not processed by the upstream (REFUSED_STREAM, GOAWAY): safe to send again
  bool reset_ = false;
  bool protocol_error_ = false;
  bool timed_out_ = false;
  core::Wakeup wake_;
  core::Deadline deadline_;
};

}  // namespace outrigger::http
