// The HTTP/2 downstream codec: one nghttp2 server session on a client
// connection (h2 by ALPN, or h2c by prior knowledge), each stream an exchange
// through the same pipeline as an HTTP/1.1 request. nghttp2 does the framing,
// HPACK, flow control and the protocol's validation; this class moves bytes
// between it and the socket and turns streams into exchanges.
//
// Two coroutines serve the connection (Http2Transport): one reads and feeds
// nghttp2, one writes what nghttp2 has to send. Every stream's exchange runs
// as its own coroutine. A request body is read from a buffer
// no larger than the stream's window, and the window is opened only as the
// router takes the bytes (nghttp2_session_consume); a response body waits in
// a bounded buffer until the client's window lets it go, so a slow stream
// holds back only its own upstream.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>

#include "outrigger/core/buffer_pool.hpp"
#include "outrigger/core/wakeup.hpp"
#include "outrigger/http/connection_host.hpp"
#include "outrigger/http/http2_transport.hpp"
#include "outrigger/net/stream.hpp"
#include "outrigger/observability/stats.hpp"

struct nghttp2_session;

namespace outrigger::http {

class Http2Stream;

// What the connection tells the session about its client.
struct Http2Peer {
  std::string_view client_ip;
  bool tls = false;
  std::string_view identity;  // mTLS identity, empty without
  std::string_view xfcc;
  const boost::asio::ip::tcp::endpoint* destination = nullptr;  // an original destination, see Exchange
};

class Http2Session final : private Http2Transport {
 public:
  using Clock = std::chrono::steady_clock;
  // `input` holds bytes already read (the connection preface, at least); the session takes them.
  Http2Session(net::Stream& stream, Buffer& input, ConnectionHost& host, Http2Peer peer);
  ~Http2Session();
  Http2Session(const Http2Session&) = delete;
  Http2Session& operator=(const Http2Session&) = delete;

  // Serves the connection until it ends; every stream's exchange has ended
  // when it returns.
  boost::asio::awaitable<void> run();
  // Drain: GOAWAY in two steps (a notice, then the last stream id); streams
  // in flight finish, the connection closes after them.
  void drain();
  // The worker's sweep: a connection without a stream for idle_timeout goes away.
  void sweep(Clock::time_point now);
  std::size_t open_streams() const { return open_streams_; }

 private:
  friend class Http2Stream;
  struct Callbacks;

  // Http2Transport
  bool quiet() const override { return open_streams_ == 0; }
  void bytes_written() override;
  void fail(int nghttp2_error) override;  // the connection closes
  void end_writes() override;
  // Submits the drain's final GOAWAY when it is due; whether it did.
  bool final_goaway(Clock::time_point now);
  // A request's header block is complete: its exchange starts.
  void start_exchange(Http2Stream& s);
  void exchange_ended(Http2Stream& s);
  void stream_closed(Http2Stream& s, std::uint32_t error_code);
  void forget(Http2Stream& s);
  void count(observability::Http2Event e);

  ConnectionHost& host_;
  Http2Peer peer_;
  CodecSettings settings_;
  core::Wakeup exchanges_done_;  // the last exchange ended (run waits for it)
  std::unordered_map<std::int32_t, std::unique_ptr<Http2Stream>> streams_;
  std::size_t open_streams_ = 0;   // streams nghttp2 has not closed
  std::size_t exchanges_ = 0;      // exchange coroutines running
  Clock::time_point idle_since_;
  bool drain_sent_ = false;
  bool goaway_final_ = false;
  Clock::time_point drain_at_;
  std::int32_t last_stream_ = 0;   // the highest stream id a request opened
  std::deque<std::int32_t> opened_;  // the last ids opened (see Callbacks::on_begin_frame)
  observability::Http2Slice& stats_;
  std::uint32_t control_frames_ = 0;  // control frames since the last request or DATA
  std::uint64_t resets_received_ = 0;
  bool abuse_counted_ = false;     // the one reason this connection ends is counted
};

}  // namespace outrigger::http
