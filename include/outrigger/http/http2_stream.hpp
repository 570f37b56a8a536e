// One HTTP/2 stream of a downstream session (http/http2_session.hpp): the
// exchange's Downstream. Its request arrives as header callbacks and DATA
// chunks; its response goes out through nghttp2's data provider, from a
// bounded buffer.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "outrigger/core/deadline_queue.hpp"
#include "outrigger/core/wakeup.hpp"
#include "outrigger/http/connection_host.hpp"
#include "outrigger/http/exchange.hpp"

namespace outrigger::http {

class Http2Session;

class Http2Stream final : public Downstream {
 public:
  using Clock = std::chrono::steady_clock;
  Http2Stream(Http2Session& session, std::int32_t id);
  ~Http2Stream() override;

  std::int32_t id() const { return id_; }
  bool closed() const { return closed_; }
  bool exchange_running() const { return running_; }
  bool remote_ended() const { return remote_ended_; }
  // The whole response is queued (its END_STREAM will go with the last frame).
  bool response_complete() const { return response_started_ && (header_only_ || out_eof_); }
  // The response is complete and the client still sends: the rest of the
  // body is read and dropped (so that nghttp2 still checks its framing),
  // up to a bound, then the stream is reset.
  bool discarding() const { return discard_left_ > 0; }
  // Something moved on the stream (a frame in, bytes out).
  void touch() { last_activity_ = Clock::now(); }
  Clock::time_point last_activity() const { return last_activity_; }
  // The exchange waits for the client: for body bytes, or for window to send.
  bool stalled_on_client() const { return !tunnel_ && (reading_ || out_offset_ < out_.size()); }  // a tunnel keeps its own idle time
  void discard_rest(std::size_t bound);

  // From the session's nghttp2 callbacks.
  void on_header(std::string_view name, std::string_view value, bool request);
  void on_request_headers(bool end_stream);
  void on_data(std::string_view data);
  void on_remote_end();
  // nghttp2 closed the stream; returns the body bytes received and never read.
  std::size_t on_closed(std::uint32_t error_code);
  void on_connection_lost();
  // The exchange (started by the session when the request header is complete).
  awaitable<void> serve(std::shared_ptr<ExchangeHandler> handler);

  // Downstream
  awaitable<BodyRead> read_body(char* buf, std::size_t size) override;
  bool request_body_done() const override { return remote_ended_ && in_offset_ == in_.size(); }
  const Fields* request_trailers() const override { return trailers_.begin() != trailers_.end() ? &trailers_ : nullptr; }
  awaitable<StreamError> write_response(ResponseMessage& msg, const Fields* trailers) override;
  awaitable<StreamError> write_local_reply(ResponseHeader& header, std::string_view body) override;
  bool response_started() const override { return response_started_; }
  net::TunnelEnd* tunnel(std::string_view& pending) override;
  void arm_deadline(Clock::time_point at) override;
  void disarm_deadline() override { deadline_.disarm(); }
  bool client_gone() const override { return reset_ && !response_complete(); }
  void watch_gone(GoneWatcher* watcher) override { gone_watcher_ = watcher; }

 private:
  struct Provider;  // nghttp2's data source for the response body
  class Tunnel;     // the stream after an extended CONNECT
  void wake();      // whatever the exchange waits for may have changed
  void gone();      // the client reset the stream, or the connection went
  // Submits the response header; with_body: DATA follows.
  bool submit(ResponseHeader& header, bool with_body);
  // Waits until the client has taken enough of what is queued.
  awaitable<StreamError> drain_output();
  StreamError failure() const;
  static void on_deadline(void* self);
  // The data provider's last read: END_STREAM, or the trailers.
  void end_body(std::uint32_t* flags);

  Http2Session& session_;
  std::int32_t id_;
  Clock::time_point start_;
  std::chrono::system_clock::time_point start_wall_;
  RequestMessage request_;
  std::string authority_;
  std::size_t header_bytes_ = 0;
  bool bad_request_ = false;
  bool too_large_ = false;       // the header block passed max_header_list_size     // a header the proxy will not forward (too large, or Host against :authority)
  Fields trailers_;              // the request's
  std::vector<std::pair<std::string, std::string>> response_trailers_;  // lower-case names
  std::string in_;               // request body received and not read yet
  std::size_t in_offset_ = 0;
  std::size_t discard_left_ = 0;
  std::string out_;              // response body queued for nghttp2
  std::size_t out_offset_ = 0;
  bool out_eof_ = false;
  // The exchange waits for the client's bytes on one, for room to queue on
  // the other: a tunnel does both at once.
  core::Wakeup wake_in_;
  core::Wakeup wake_out_;
  std::string protocol_;          // :protocol of an extended CONNECT
  bool extended_connect_ = false;
  std::unique_ptr<Tunnel> tunnel_;
  core::Deadline deadline_;
  GoneWatcher* gone_watcher_ = nullptr;
  bool timed_out_ = false;
  bool remote_ended_ = false;    // END_STREAM from the client
  bool reset_ = false;           // the client reset the stream, or the connection went
  bool closed_ = false;          // nghttp2 closed it
  bool running_ = false;         // the exchange coroutine is alive
  bool response_started_ = false;
  bool header_only_ = false;     // HEAD, 1xx, 204, 304: no DATA
  bool is_head_ = false;
  bool reading_ = false;         // read_body waits for the client
  Clock::time_point last_activity_;
};

}  // namespace outrigger::http
