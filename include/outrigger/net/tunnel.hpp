// Bytes both ways between two ends until both are done: opaque TCP, TLS
// passthrough, and HTTP connections after an upgrade (101, or HTTP/2's
// extended CONNECT). One coroutine per direction; an end of file on one side
// becomes a half-close (shutdown of sending) on the other, and the other
// direction goes on. An error on either side closes both. Nothing moving
// either way for the idle timeout closes both too.
//
// Between two plain sockets (the common case: opaque TCP, TLS passed
// through) a direction waits for readability holding no buffer, then moves
// what is there in 64 KiB reads and writes through a block taken from a
// per-thread free list for that burst only: an idle tunnel costs no memory
// but its sockets, and a busy one a read and a write per 64 KiB.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstdint>
#include <string_view>
#include <utility>

namespace outrigger::net {

class Stream;

// One side of a tunnel.
class TunnelEnd {
 public:
  virtual ~TunnelEnd() = default;
  // Some bytes into buf; 0 bytes with an error (eof at the end).
  virtual boost::asio::awaitable<std::pair<boost::system::error_code, std::size_t>> read(char* buf,
                                                                                          std::size_t size) = 0;
  // All of bytes.
  virtual boost::asio::awaitable<boost::system::error_code> write(std::string_view bytes) = 0;
  // No more bytes will be written (TCP: a FIN; the peer may go on sending).
  virtual boost::asio::awaitable<void> finish() = 0;
  // Ends whatever the end waits for, now (the other side failed, the idle
  // timeout, a shutdown).
  virtual void abort() = 0;
  // The plain TCP socket under this end, when nothing but TCP is there:
  // between two such ends the relay moves bytes straight between sockets.
  virtual boost::asio::ip::tcp::socket* plain_socket() { return nullptr; }
};

// A net::Stream as a tunnel end. Over TLS, finish() sends close_notify (then
// a FIN), and reading goes on: TLS's half-close.
class StreamEnd final : public TunnelEnd {
 public:
  explicit StreamEnd(Stream& stream) : stream_(stream) {}
  boost::asio::awaitable<std::pair<boost::system::error_code, std::size_t>> read(char* buf, std::size_t size) override;
  boost::asio::awaitable<boost::system::error_code> write(std::string_view bytes) override;
  boost::asio::awaitable<void> finish() override;
  void abort() override;
  boost::asio::ip::tcp::socket* plain_socket() override;

 private:
  Stream& stream_;
};

struct TunnelResult {
  std::uint64_t a_to_b = 0;  // bytes read from a and written to b
  std::uint64_t b_to_a = 0;
  enum class End : std::uint8_t { closed, idle_timeout, error } end = End::closed;
};

// Relays until both directions are done. `to_b` and `to_a` are bytes already
// read from a (and from b) that go first.
boost::asio::awaitable<TunnelResult> relay(TunnelEnd& a, TunnelEnd& b, std::chrono::milliseconds idle_timeout,
                                           std::string_view to_b = {}, std::string_view to_a = {});

}  // namespace outrigger::net
