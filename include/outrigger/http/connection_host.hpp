// What a downstream connection asks of the worker and of the proxy: the
// codec's settings, the exchange handler of the current config, the
// listener's TLS. Kept apart from the codec so that the server's headers do
// not pull in Asio's stream templates.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/intrusive/list_hook.hpp>
#include <chrono>
#include <memory>

#include "outrigger/core/deadline_queue.hpp"
#include "outrigger/http/exchange.hpp"
#include "outrigger/http/headers.hpp"
#include "outrigger/tls/context.hpp"

namespace outrigger::net {
class Stream;
}

namespace outrigger::http {

// HTTP/2 toward one peer (RFC 9113 §6.5.2, §6.9).
struct Http2Settings {
  std::uint32_t max_concurrent_streams = 100;
  std::uint32_t initial_stream_window_size = 65535;
  std::uint32_t initial_connection_window_size = 1 << 20;
  std::uint32_t max_header_list_size = 60 * 1024;
};

struct CodecSettings {
  std::size_t max_request_line_bytes = 8 * 1024;
  std::size_t max_request_headers_bytes = 60 * 1024;
  std::chrono::milliseconds request_headers_timeout{10'000};
  std::chrono::milliseconds idle_timeout{60'000};
  // What the listener accepts: HTTP/1.1, HTTP/2 (h2 by ALPN, h2c by its
  // connection preface), or both.
  bool http1 = true;
  bool http2_enabled = true;
  Http2Settings http2;
};

// What the codec asks of the proxy, per request. One per listener and config snapshot.
// A listener's TLS, as its connections use it.
struct DownstreamTls {
  tls::Context* context = nullptr;  // the current certificates
  bool permissive = false;          // plain clients too, told apart by their first byte
  bool want_xfcc = false;           // make the x-forwarded-client-cert element of each client
};

class ExchangeHandler {
 public:
  virtual ~ExchangeHandler() = default;
  virtual const CodecSettings& settings() const = 0;
  // The listener's TLS; null when it speaks plain HTTP only. Lives as long as the handler.
  virtual const DownstreamTls* tls() const { return nullptr; }
  // Produces the response through ex.downstream.
  virtual awaitable<void> handle(Exchange& ex) = 0;
  // The exchange is over (also for requests the codec refused, which it
  // answered through http::send_local_reply): metrics, spans, access log.
  virtual void complete(Exchange& ex) = 0;
  // A TLS client that agreed on ALPN "outrigger-tcp" (another Outrigger
  // sending opaque TCP): the connection is a TCP tunnel until it ends.
  virtual awaitable<void> tunnel(net::Stream& /*client*/, std::string_view /*identity*/,
                                 const boost::asio::ip::tcp::endpoint* /*destination*/) {
    co_return;
  }
};

// The worker's side of a listener, as a connection sees it.
class ConnectionHost {
 public:
  virtual ~ConnectionHost() = default;
  // The handler of the config snapshot in force now.
  virtual std::shared_ptr<ExchangeHandler> current_handler() = 0;
  // Its settings, without taking a reference to it.
  virtual const CodecSettings& settings() = 0;
  virtual bool draining() const = 0;
  virtual RequestIdGenerator& request_ids() = 0;
  // The worker's deadlines (route timeouts).
  virtual core::DeadlineQueue& deadlines() = 0;
  virtual void connection_closed(bool tls) = 0;
  // This worker's slice of the listener's series.
  virtual observability::ListenerSlice& listener_stats() = 0;
  // A connection may keep a read buffer while briefly idle only if the worker
  // has room for one more; bounds the memory a crowd of idle clients can pin.
  virtual bool begin_linger() = 0;
  virtual void end_linger() = 0;
};

using ConnectionHook = boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>>;

// What a worker does with each of its client connections, whatever they
// carry (HTTP, a TCP tunnel).
class ClientConnection : public ConnectionHook {
 public:
  using Clock = std::chrono::steady_clock;
  // Every 100 ms: timeouts of the phase the connection is in.
  virtual void sweep(Clock::time_point now, Clock::duration linger) = 0;
  // Drain: close now if nothing is in flight, else after it.
  virtual void close_if_idle() = 0;
  // Worker shutdown: close now.
  virtual void close_now() = 0;

  // The listener it came in on (set by the worker that lists it), so that a
  // drain of some listeners finds their connections.
  const ConnectionHost* listener = nullptr;

 protected:
  ~ClientConnection() = default;
};

}  // namespace outrigger::http
