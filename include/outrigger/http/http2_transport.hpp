// The bytes side of an HTTP/2 connection, one for the server codec
// (Http2Session) and the client codec (Http2Client): one coroutine reads and
// feeds nghttp2, one writes what nghttp2 has to send, woken when there is
// more. The codec on top says when the connection is quiet (an idle
// cleartext connection then holds no buffers while it waits for bytes) and
// what a read, a write, a failure and the end of the writes mean to it.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <string>

#include "outrigger/core/buffer_pool.hpp"
#include "outrigger/core/wakeup.hpp"
#include "outrigger/net/stream.hpp"

struct nghttp2_session;

namespace outrigger::http {

class Http2Transport {
 public:
  using Clock = std::chrono::steady_clock;
  using Buffer = boost::beast::basic_flat_buffer<core::PooledAllocator<char>>;

 protected:
  // `input`: bytes already read (a server's connection preface), fed first.
  Http2Transport(net::Stream& stream, Buffer input);
  ~Http2Transport() = default;
  Http2Transport(const Http2Transport&) = delete;
  Http2Transport& operator=(const Http2Transport&) = delete;

  // Until the peer closes, nghttp2 wants nothing more, or closing_.
  boost::asio::awaitable<void> read_loop();
  // Until nothing is left to say, or closing_; then end_writes().
  boost::asio::awaitable<void> write_loop();
  void wake_writer() { writer_.notify(); }

  virtual bool quiet() const = 0;  // no stream open
  virtual void bytes_read() {}
  virtual void bytes_written() {}
  virtual void fail(int nghttp2_error) = 0;  // nghttp2 said the connection is broken
  virtual void end_writes() = 0;             // the socket, once the writer is done

  net::Stream& stream_;
  nghttp2_session* session_ = nullptr;  // the codec's; made and deleted by it
  Buffer input_;
  std::string out_;  // what the writer sends next
  core::Wakeup writer_;
  bool closing_ = false;  // the connection is going: the writer says what is left, then it ends
  Clock::time_point writing_since_ = Clock::time_point::max();  // a write is pending since
};

}  // namespace outrigger::http
