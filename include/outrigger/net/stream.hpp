// A connection's byte stream: plain TCP, or TLS over it once start_tls() ran.
// It meets Asio's AsyncReadStream and AsyncWriteStream, so Beast's readers
// and writers take it as they take a socket; each operation picks the TLS or
// the plain path at run time (one branch, no virtual call, no allocation).
// Included only by the codecs, the router and the pools (Asio SSL templates).
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <memory>

#include "outrigger/tls/context.hpp"

namespace outrigger::net {

using TlsStream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>;

class Stream {
 public:
  using executor_type = boost::asio::ip::tcp::socket::executor_type;

  explicit Stream(boost::asio::ip::tcp::socket socket) : socket_(std::move(socket)) {}
  explicit Stream(const executor_type& ex) : socket_(ex) {}
  Stream(const Stream&) = delete;  // the TLS layer points at socket_
  Stream& operator=(const Stream&) = delete;

  executor_type get_executor() { return socket_.get_executor(); }
  // The TCP layer: deadlines cancel it, idle checks peek at it.
  boost::asio::ip::tcp::socket& socket() { return socket_; }
  // The TLS layer, or null on a plain stream.
  TlsStream* tls() { return tls_.get(); }
  const tls::Loaded* tls_material() const { return material_.get(); }

  // From now on bytes go through TLS made from `material` (which the stream
  // keeps alive); the handshake is the caller's.
  TlsStream& start_tls(std::shared_ptr<const tls::Loaded> material) {
    material_ = std::move(material);
    tls_ = std::make_unique<TlsStream>(socket_, *material_->context);
    return *tls_;
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& b) {
          if (tls_) {
            tls_->async_read_some(b, std::move(handler));
          } else {
            socket_.async_read_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& b) {
          if (tls_) {
            tls_->async_write_some(b, std::move(handler));
          } else {
            socket_.async_write_some(b, std::move(handler));
          }
        },
        token, buffers);
  }

 private:
  boost::asio::ip::tcp::socket socket_;
  std::shared_ptr<const tls::Loaded> material_;
  std::unique_ptr<TlsStream> tls_;
};

}  // namespace outrigger::net
