// Writes what a Beast serializer has ready with few iovecs: the small pieces
// (status line, header fields, chunk framing) are copied into one contiguous
// scratch buffer, large pieces (body data) are sent in place. Beast's own
// async_write hands the kernel one iovec per header token, which costs more
// than the copy. Included only by the codecs.
#pragma once

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/error.hpp>
#include <cstring>
#include <span>

#include "outrigger/core/buffer_pool.hpp"

namespace outrigger::http {

template <class AsyncWriteStream, class Serializer>
boost::asio::awaitable<boost::system::error_code> write_serialized(AsyncWriteStream& socket, Serializer& sr,
                                                                   bool header_only = false) {
  namespace asio = boost::asio;
  constexpr std::size_t kCopyBelow = 1024;
  auto scratch = core::thread_buffer_pool().get();
  boost::system::error_code ec;
  if (header_only) sr.split(true);
  while (!(header_only ? sr.is_header_done() : sr.is_done())) {
    std::array<asio::const_buffer, 16> iov;
    std::size_t count = 0, used = 0, total = 0;
    sr.next(ec, [&](boost::system::error_code&, const auto& buffers) {
      for (asio::const_buffer b : boost::beast::buffers_range_ref(buffers)) {
        if (b.size() == 0) continue;
        char* tail = scratch.data() + used;
        if (b.size() < kCopyBelow && used + b.size() <= scratch.size()) {
          const bool extends = count > 0 && static_cast<const char*>(iov[count - 1].data()) + iov[count - 1].size() == tail;
          if (!extends && count == iov.size()) break;
          std::memcpy(tail, b.data(), b.size());
          if (extends) {
            iov[count - 1] = asio::const_buffer(iov[count - 1].data(), iov[count - 1].size() + b.size());
          } else {
            iov[count++] = asio::const_buffer(tail, b.size());
          }
          used += b.size();
        } else {
          if (count == iov.size()) break;
          iov[count++] = b;
        }
        total += b.size();
      }
    });
    if (ec == boost::beast::http::error::need_buffer) {
      ec = {};
      break;
    }
    if (ec) break;
    // One buffer (the usual: a header and a small body, copied together) takes
    // Asio's single-buffer write, cheaper than the buffer-sequence one.
    auto [wec, n] = count == 1 ? co_await asio::async_write(socket, asio::buffer(iov[0]), asio::as_tuple(asio::use_awaitable))
                               : co_await asio::async_write(socket, std::span(iov.data(), count),
                                                            asio::as_tuple(asio::use_awaitable));
    if (wec) {
      ec = wec;
      break;
    }
    sr.consume(total);
  }
  co_return ec;
}

// The end of a chunked body with trailer fields: Beast's last chunk, after
// the serializer has written every piece (the last one with more = true).
template <class AsyncWriteStream, class Fields>
boost::asio::awaitable<boost::system::error_code> write_last_chunk(AsyncWriteStream& socket, const Fields& trailers) {
  auto [ec, n] = co_await boost::asio::async_write(socket, boost::beast::http::make_chunk_last(trailers),
                                                   boost::asio::as_tuple(boost::asio::use_awaitable));
  co_return ec;
}

}  // namespace outrigger::http
