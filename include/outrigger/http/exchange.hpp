// One request and its response as the filter chain and the router see it,
// whatever codec carries it (Pingora's Session). The codec owns the messages
// and implements Downstream; the exchange borrows them and adds the record
// of what happened (observability::ExchangeRecord), the matched route, and a
// typed slot for the filters' per-request state.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "outrigger/config/config.hpp"
#include "outrigger/http/filter_state.hpp"
#include "outrigger/http/headers.hpp"
#include "outrigger/http/local_reply.hpp"
#include "outrigger/observability/exchange_record.hpp"

namespace boost::asio::ip {
class tcp;
template <typename InternetProtocol>
class basic_endpoint;
}  // namespace boost::asio::ip

namespace outrigger::net {
class TunnelEnd;
}

namespace outrigger::http {

using RequestMessage = boost::beast::http::request<boost::beast::http::buffer_body, Fields>;
using ResponseMessage = boost::beast::http::response<boost::beast::http::buffer_body, Fields>;
using RequestHeader = boost::beast::http::request_header<Fields>;
using ResponseHeader = boost::beast::http::response_header<Fields>;
using boost::asio::awaitable;
using boost::system::error_code;

// How a read or a write on a stream of the exchange ended.
enum class StreamError : std::uint8_t {
  none,
  malformed,  // the peer's framing is broken (a bad chunk size, data past a chunk)
  reset,      // the peer closed or reset the connection
  timeout,    // the route deadline passed
};

struct BodyRead {
  StreamError error = StreamError::none;
  std::size_t bytes = 0;
  bool done = false;  // the body is complete (after these bytes)
};

// The downstream side of an exchange, implemented by a codec (HTTP/1.1 now,
// an HTTP/2 stream next).
class Downstream {
 public:
  virtual ~Downstream() = default;

  // Reads the next piece of the request body into buf. Sends `100 Continue`
  // first when the client asked for it.
  virtual awaitable<BodyRead> read_body(char* buf, std::size_t size) = 0;
  virtual bool request_body_done() const = 0;
  // The request's trailer fields, once its body is done; null when none came.
  virtual const Fields* request_trailers() const { return nullptr; }

  // Writes what msg holds: the header on the first call, then whatever
  // msg.body() points at (body().more = false on the last piece). The codec
  // fixes the framing (Content-Length, chunked, close-delimited) and the
  // connection headers; msg must outlive the response. `trailers` (with the
  // last piece, or null) follow the body where the protocol can carry them:
  // HTTP/2, or a chunked HTTP/1.1 response; elsewhere they are dropped.
  virtual awaitable<StreamError> write_response(ResponseMessage& msg, const Fields* trailers) = 0;
  // A whole response made by the proxy (through http::send_local_reply only).
  virtual awaitable<StreamError> write_local_reply(ResponseHeader& header, std::string_view body) = 0;
  virtual bool response_started() const = 0;

  // The route deadline: at `at`, pending reads and writes of this side fail
  // with StreamError::timeout. (Each upstream try has its own deadline.)
  virtual void arm_deadline(std::chrono::steady_clock::time_point at) = 0;
  virtual void disarm_deadline() = 0;

  // The client went away before its response (an HTTP/2 stream it reset,
  // a connection lost). A codec that can tell says so through client_gone()
  // and calls the watcher set with watch_gone() once, when it happens; one
  // that cannot (HTTP/1.1 reads nothing while a request is handled) never
  // does. watch_gone(nullptr) stops watching.
  struct GoneWatcher {
    virtual void client_gone() = 0;

   protected:
    ~GoneWatcher() = default;
  };
  virtual bool client_gone() const { return false; }
  virtual void watch_gone(GoneWatcher* watcher) { (void)watcher; }

  // After an upgrade (a 101 written through write_response, or an HTTP/2
  // extended CONNECT answered 200): the client's side of the tunnel, and in
  // `pending` what the codec read past the request (it goes upstream
  // first). Null when this codec cannot tunnel.
  virtual net::TunnelEnd* tunnel(std::string_view& pending) {
    pending = {};
    return nullptr;
  }
};

class FilterChain;

struct Exchange : observability::ExchangeRecord {
  Exchange(RequestMessage& req, Downstream& down, std::chrono::steady_clock::time_point start_time,
           std::chrono::system_clock::time_point start_wall_time, std::string_view client_ip)
      : request(req), downstream(down) {
    start = start_time;
    start_wall = start_wall_time;
    downstream_ip = client_ip;
  }

  RequestMessage& request;  // header as received, edited for the upstream; body streamed through downstream
  Downstream& downstream;
  bool request_has_body = false;                         // set by the codec
  std::optional<std::uint64_t> request_content_length;  // set by the codec; none for chunked

  const config::Route* route = nullptr;  // the matched route; null when none matched
  ControlHeaders control;                // the client's x-outrigger-* overrides (trusted listeners only)
  ProxyError error = ProxyError::none;
  bool close_connection = false;  // the codec must close after this exchange
  std::string upgrade;            // the protocol an upgrade asks for (lower case), empty for none
  bool extended_connect = false;  // ... through HTTP/2's extended CONNECT (RFC 8441)
  // The connection's original destination (an original-destination
  // listener): where a request no route takes goes. Null otherwise.
  const boost::asio::ip::basic_endpoint<boost::asio::ip::tcp>* destination = nullptr;

  // The filters of this exchange, and how many have seen its request:
  // their on_response sees every response, local replies included.
  FilterChain* filters = nullptr;
  std::size_t filters_ran = 0;
  FilterState state;  // filters' per-request state, by type
};

// Every response the proxy makes goes through here (errors, direct
// responses, filter denials, fallbacks, codec refusals): the filters that
// saw the request see the response header, the record gets the status and
// the body bytes, and the codec frames it. Nothing is sent when a response
// has started, or to a client known gone (ex.error downstream_reset); the
// connection is closed instead.
awaitable<void> send_local_reply(Exchange& ex, const LocalReply& reply);

}  // namespace outrigger::http
