#include "outrigger/http/http2_transport.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "http2_io.hpp"

namespace outrigger::http {

namespace asio = boost::asio;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {
constexpr std::size_t kReadChunk = 16 * 1024;
constexpr std::size_t kWriteBatch = 64 * 1024;  // what the writer gathers before a write
}  // namespace

Http2Transport::Http2Transport(net::Stream& stream, Buffer input)
    : stream_(stream), input_(std::move(input)), writer_(stream.get_executor()) {}

asio::awaitable<void> Http2Transport::read_loop() {
  if (input_.size() > 0) {
    if (const int rv = h2::feed(session_, input_); rv != 0) fail(rv);
    wake_writer();
  }
  while (!closing_ && (nghttp2_session_want_read(session_) || nghttp2_session_want_write(session_))) {
    if (!stream_.tls()) {
      // An idle connection holds no buffers: they are taken when bytes come.
      // (Over TLS the SSL layer may hold bytes a wait on the socket would miss.)
      if (quiet() && writing_since_ == Clock::time_point::max()) {
        input_.shrink_to_fit();
        std::string().swap(out_);
      }
      auto [wait_ec] = co_await stream_.socket().async_wait(asio::ip::tcp::socket::wait_read, use_tuple);
      if (wait_ec || closing_) break;
    }
    auto [ec, n] = co_await stream_.async_read_some(input_.prepare(kReadChunk), use_tuple);
    input_.commit(n);
    if (ec) break;
    bytes_read();
    if (const int rv = h2::feed(session_, input_); rv != 0) {
      fail(rv);
      break;
    }
    wake_writer();
  }
  input_.shrink_to_fit();
  closing_ = true;
  wake_writer();
}

asio::awaitable<void> Http2Transport::write_loop() {
  for (;;) {
    while (nghttp2_session_want_write(session_)) {
      out_.clear();
      if (const int rv = h2::collect_output(session_, out_, kWriteBatch); rv != 0) fail(rv);
      if (out_.empty()) break;
      writing_since_ = Clock::now();
      auto [ec, written] = co_await asio::async_write(stream_, asio::buffer(out_), use_tuple);
      writing_since_ = Clock::time_point::max();
      if (ec) {
        closing_ = true;
        break;
      }
      bytes_written();
    }
    if (closing_ || (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_))) break;
    co_await writer_.wait();
  }
  std::string().swap(out_);
  closing_ = true;  // nothing more to say: the reader stops too
  end_writes();
}

}  // namespace outrigger::http
