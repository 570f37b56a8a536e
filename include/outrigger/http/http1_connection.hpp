// The HTTP/1.1 downstream codec: one coroutine per client connection that
// reads a request (Beast's parser), hands the exchange to the proxy, writes
// the response, and loops for keep-alive and pipelining. While a connection
// is idle it holds no read buffer.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "outrigger/core/buffer_pool.hpp"
#include "outrigger/http/connection_host.hpp"
#include "outrigger/http/deadline.hpp"
#include "outrigger/http/exchange.hpp"
#include "outrigger/http/headers.hpp"
#include "outrigger/net/stream.hpp"

namespace outrigger::http {

class Http1Connection final : public Downstream, public ConnectionHook {
 public:
  // The parser and serializer of the request in progress: taken from a
  // per-thread pool when a request starts and given back when it ends, so an
  // idle connection does not hold them.
  struct RequestState;
  struct RequestStateRelease {
    void operator()(RequestState* s) const;
  };

  Http1Connection(boost::asio::ip::tcp::socket socket, ConnectionHost& host);
  ~Http1Connection() override;

  awaitable<void> serve();
  // Drain: an idle connection closes now, a busy one after its response.
  void close_if_idle();
  // Gives back the read buffer of a connection idle for longer than `after`.
  void release_if_lingering(std::chrono::steady_clock::time_point now, std::chrono::steady_clock::duration after);

  // Downstream
  awaitable<BodyRead> read_body(char* buf, std::size_t size) override;
  bool request_body_done() const override;
  awaitable<error_code> write_response(ResponseMessage& msg) override;
  bool response_started() const override { return response_started_; }
  awaitable<error_code> send_local_reply(int status, std::string_view body, std::string_view error_reason,
                                         std::string_view content_type,
                                         std::span<const config::HeaderValue> headers) override;
  void arm_deadline(std::chrono::steady_clock::time_point at, boost::asio::ip::tcp::socket* upstream) override;
  void disarm_deadline() override;
  bool deadline_expired() const override { return deadline_.expired(); }

 private:
  enum class ReadResult { ok, closed, bad_request, too_large, timeout };
  // The listener's TLS: a handshake (after a look at the first byte when
  // permissive). False when the connection is to close.
  awaitable<bool> start_tls(ExchangeHandler& handler, const DownstreamTls& tls);
  awaitable<ReadResult> read_header(const Http1Settings& s);
  awaitable<error_code> read_more();
  void prepare_response(boost::beast::http::response_header<Fields>& h, bool has_length);
  awaitable<void> refuse(ExchangeHandler& handler, ReadResult why);
  bool header_only_response(int status) const;


  net::Stream stream_;
  ConnectionHost& host_;
  Deadline deadline_;
  boost::beast::basic_flat_buffer<core::PooledAllocator<char>> buffer_;
  std::unique_ptr<RequestState, RequestStateRelease> state_;
  std::string client_ip_;
  // What the client's certificate says (TLS connections only).
  struct Peer {
    std::string identity;
    std::string xfcc;
  };
  std::unique_ptr<Peer> peer_;
  bool idle_ = false;
  bool lingering_ = false;         // idle, with a read pending on a pooled buffer
  bool linger_cancelled_ = false;  // the worker's sweep cancelled that read
  std::chrono::steady_clock::time_point linger_since_;
  bool keep_alive_ = true;
  bool closing_after_response_ = false;
  bool response_started_ = false;
  bool header_only_ = false;
  bool continue_pending_ = false;  // the client sent `Expect: 100-continue`
  bool is_head_ = false;
  unsigned request_version_ = 11;
};

}  // namespace outrigger::http
