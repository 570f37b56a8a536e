// A blocking TLS client for the tests (OpenSSL on a plain socket, with a
// receive timeout): connect and handshake, optionally with a client
// certificate, then send requests and read responses as Socket does.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "support/net.hpp"

using SSL = struct ssl_st;
using SSL_CTX = struct ssl_ctx_st;
using SSL_SESSION = struct ssl_session_st;

namespace testing_support {

class TlsClient {
 public:
  struct Options {
    std::string ca;          // verify the server against it (empty: no verification)
    std::string cert, key;   // a client certificate (optional)
    std::string sni;
    SSL_SESSION* resume = nullptr;  // a session to resume (not owned)
  };

  TlsClient(std::uint16_t port, const Options& options, std::chrono::milliseconds timeout = 3s);
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  // The handshake completed. (With TLS 1.3 a server that refuses the client
  // certificate says so after that: the first read then fails.)
  bool connected() const { return connected_; }
  const std::string& error() const { return error_; }
  bool send(std::string_view bytes);
  std::optional<Response> read_response(std::chrono::milliseconds timeout = 3s);
  // One GET of `target`: its status, or -1.
  int get(const std::string& target, std::vector<std::pair<std::string, std::string>> headers = {});
  bool session_reused() const;
  SSL_SESSION* session() const;  // a new reference; SSL_SESSION_free it
  std::string server_serial() const;  // the serial number of the server's certificate, hex
  std::string alpn() const;

 private:
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  bool connected_ = false;
  std::string error_;
  std::string pending_;
  SSL_SESSION* last_session_ = nullptr;
};

}  // namespace testing_support
