// A client connection, and its HTTP/1.1 codec: one coroutine that reads a
// request (Beast's parser, then the strict framing checks of
// http/framing.hpp), hands the exchange to the proxy, writes the response,
// and loops for keep-alive and pipelining. A connection that speaks HTTP/2
// (ALPN h2 after its TLS handshake, or the HTTP/2 preface as its first bytes:
// h2c by prior knowledge) is handed to an Http2Session instead, which runs
// over this connection's stream until it ends.
//
// A busy keep-alive connection reads its next request straight into a pooled
// buffer. One that stays idle longer (the worker's sweep, every 100 ms, cancels
// that read) parks: its coroutine ends, and a plain wait for readability,
// holding only the connection, takes over until the client speaks again; then
// a new coroutine starts. A parked connection costs its socket, this object
// and one pending wait: no coroutine frame, no buffer, no timer. The sweep
// also enforces the idle, header-read and handshake timeouts from the phase the
// connection is in. Only a request in flight has a deadline in the worker's
// DeadlineQueue (its route timeout), an intrusive node in this object.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "outrigger/core/buffer_pool.hpp"
#include "outrigger/core/deadline_queue.hpp"
#include "outrigger/http/connection_host.hpp"
#include "outrigger/http/exchange.hpp"
#include "outrigger/http/headers.hpp"
#include "outrigger/net/stream.hpp"
#include "outrigger/net/tunnel.hpp"

namespace outrigger::http {

class Http1Connection final : public Downstream, public ClientConnection {
 public:
  using Clock = std::chrono::steady_clock;
  // The parser and serializer of the request in progress: taken from a
  // per-thread pool when a request starts and given back when it ends, so an
  // idle connection does not hold them.
  struct RequestState;
  struct RequestStateRelease {
    void operator()(RequestState* s) const;
  };

  // `preread`: the client's first bytes, read by protocol detection;
  // `destination`: its original destination (original-destination listeners).
  Http1Connection(boost::asio::ip::tcp::socket socket, ConnectionHost& host, std::string_view preread = {},
                  std::optional<boost::asio::ip::tcp::endpoint> destination = std::nullopt);
  ~Http1Connection() override;

  // Serves the connection until it closes; it owns itself meanwhile (its
  // coroutine's completion, or its parked wait, holds it).
  static void run(std::unique_ptr<Http1Connection> connection);
  // Drain: an idle connection closes now, a busy one after its response.
  void close_if_idle() override;
  // Worker shutdown: the connection ends now, whatever it was doing.
  void close_now() override;
  // The worker's sweep: a phase past its deadline is cancelled; a read that
  // lingered longer than `linger` gives its buffer back.
  void sweep(Clock::time_point now, Clock::duration linger) override;

  // Downstream
  awaitable<BodyRead> read_body(char* buf, std::size_t size) override;
  bool request_body_done() const override;
  const Fields* request_trailers() const override;
  awaitable<StreamError> write_response(ResponseMessage& msg, const Fields* trailers) override;
  awaitable<StreamError> write_local_reply(ResponseHeader& header, std::string_view body) override;
  bool response_started() const override { return response_started_; }
  net::TunnelEnd* tunnel(std::string_view& pending) override;
  void arm_deadline(Clock::time_point at) override { route_deadline_.arm(at, &stream_.socket()); }
  void disarm_deadline() override { route_deadline_.disarm(); }

 private:
  // What the connection is doing, for the sweep: each phase but `active`
  // has a deadline there (an active request has its route deadline instead).
  enum class Phase : std::uint8_t { handshake, idle, reading_header, active, closing };
  enum class ReadResult { ok, closed, bad_request, too_large, timeout, not_implemented };

  // Until the connection closes or parks.
  awaitable<void> serve();
  // The client's first bytes are the HTTP/2 connection preface.
  awaitable<bool> is_http2_preface();
  awaitable<void> serve_http2();
  static void park(std::unique_ptr<Http1Connection> connection);
  // Serves one request; false when the connection is to close.
  awaitable<bool> serve_request();
  // The listener's TLS: a handshake (after a look at the first byte when
  // permissive). False when the connection is to close.
  awaitable<bool> start_tls(ExchangeHandler& handler, const DownstreamTls& tls);
  awaitable<ReadResult> read_header(const CodecSettings& s);
  ReadResult check_header();
  awaitable<error_code> read_more();
  awaitable<void> refuse(ExchangeHandler& handler, ReadResult why);
  awaitable<void> finish();
  void enter(Phase p, Clock::time_point deadline = Clock::time_point::max()) {
    phase_ = p;
    phase_deadline_ = deadline;
    timed_out_ = false;
  }
  void prepare_response(ResponseHeader& h, bool has_length);
  bool header_only_response(int status) const;
  StreamError write_error(const error_code& ec) const;

  net::Stream stream_;
  ConnectionHost& host_;
  boost::beast::basic_flat_buffer<core::PooledAllocator<char>> buffer_;
  std::unique_ptr<RequestState, RequestStateRelease> state_;
  core::Deadline route_deadline_;  // after stream_: unlinked before the socket goes
  std::string client_ip_;
  // What the client's certificate says (TLS connections only).
  struct Peer {
    std::string identity;
    std::string xfcc;
  };
  std::unique_ptr<Peer> peer_;
  std::unique_ptr<class Http2Session> h2_;  // while the connection speaks HTTP/2
  std::optional<boost::asio::ip::tcp::endpoint> destination_;
  std::unique_ptr<net::StreamEnd> tunnel_;  // after a 101
  Clock::time_point phase_deadline_ = Clock::time_point::max();
  Clock::time_point linger_since_;
  Phase phase_ = Phase::active;
  bool timed_out_ = false;         // the sweep cancelled the phase's I/O
  // A read saw the client's FIN: nothing reads again. With Asio's edge-triggered
  // epoll a second read after the end may never complete (no new edge comes),
  // and the connection would wait for its header timeout (found by http1_fuzz).
  bool peer_closed_ = false;
  bool started_ = false;           // TLS (if any) is set up: a resumed coroutine skips it
  bool first_request_ = true;      // nothing served yet: the HTTP/2 preface may come
  bool parked_ = false;            // the coroutine ended to wait without a frame
  bool resumed_ = false;           // the parked wait saw the socket readable
  bool lingering_ = false;         // idle, with a read pending on a pooled buffer
  bool linger_cancelled_ = false;  // the worker's sweep cancelled that read
  bool keep_alive_ = true;
  bool closing_after_response_ = false;
  bool response_started_ = false;
  bool header_only_ = false;
  bool continue_pending_ = false;  // the client sent `Expect: 100-continue`
  bool is_head_ = false;
  unsigned request_version_ = 11;
};

}  // namespace outrigger::http
