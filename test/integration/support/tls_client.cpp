#include "support/tls_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>


namespace testing_support {

namespace {
std::string ssl_errors() {
  std::string out;
  while (const auto e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += out.empty() ? "" : "; ";
    out += buf;
  }
  return out;
}

void set_timeout(int fd, std::chrono::milliseconds t) {
  timeval tv{static_cast<time_t>(t.count() / 1000), static_cast<suseconds_t>((t.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}
}  // namespace

TlsClient::TlsClient(std::uint16_t port, const Options& o, std::chrono::milliseconds timeout) {
  ERR_clear_error();
  ctx_ = SSL_CTX_new(TLS_client_method());
  // Keep the newest session the server hands out (TLS 1.3 sends its tickets
  // after the handshake), as a real client would, to resume with.
  SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx_, [](SSL* ssl, SSL_SESSION* s) {
    auto* self = static_cast<TlsClient*>(SSL_get_app_data(ssl));
    if (self->last_session_) SSL_SESSION_free(self->last_session_);
    self->last_session_ = s;
    return 1;
  });
  if (!o.ca.empty()) {
    SSL_CTX_load_verify_locations(ctx_, o.ca.c_str(), nullptr);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  }
  if (!o.cert.empty() && (SSL_CTX_use_certificate_chain_file(ctx_, o.cert.c_str()) != 1 ||
                          SSL_CTX_use_PrivateKey_file(ctx_, o.key.c_str(), SSL_FILETYPE_PEM) != 1)) {
    error_ = "client certificate: " + ssl_errors();
    return;
  }
  static constexpr unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx_, kAlpn, sizeof kAlpn);
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    error_ = "connect failed";
    return;
  }
  set_timeout(fd_, timeout);
  ssl_ = SSL_new(ctx_);
  SSL_set_app_data(ssl_, this);
  SSL_set_fd(ssl_, fd_);
  if (!o.sni.empty()) SSL_set_tlsext_host_name(ssl_, o.sni.c_str());
  if (o.resume) SSL_set_session(ssl_, o.resume);
  if (SSL_connect(ssl_) != 1) {
    error_ = "handshake: " + ssl_errors();
    return;
  }
  connected_ = true;
}

TlsClient::~TlsClient() {
  if (ssl_ && connected_) SSL_shutdown(ssl_);  // a session closed without it is not resumable
  if (ssl_) SSL_free(ssl_);
  if (ctx_) SSL_CTX_free(ctx_);
  if (last_session_) SSL_SESSION_free(last_session_);
  if (fd_ >= 0) ::close(fd_);
}

bool TlsClient::send(std::string_view bytes) {
  if (!connected_) return false;
  while (!bytes.empty()) {
    const int n = SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()));
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::optional<Response> TlsClient::read_response(std::chrono::milliseconds timeout) {
  if (!connected_) return std::nullopt;
  set_timeout(fd_, timeout);
  return parse_response(
      [&](char* buf, std::size_t size) {
        if (!pending_.empty()) {
          const auto n = std::min(size, pending_.size());
          pending_.copy(buf, n);
          pending_.erase(0, n);
          return static_cast<int>(n);
        }
        const int n = SSL_read(ssl_, buf, static_cast<int>(size));
        if (n > 0) return n;
        const int why = SSL_get_error(ssl_, n);  // before the error queue is read
        error_ = "read: " + ssl_errors();
        return why == SSL_ERROR_ZERO_RETURN ? 0 : -1;
      },
      pending_);
}

int TlsClient::get(const std::string& target, std::vector<std::pair<std::string, std::string>> headers) {
  if (!send(request_text("GET", target, std::move(headers)))) return -1;
  auto res = read_response();
  return res ? res->result_int() : -1;
}

bool TlsClient::session_reused() const { return ssl_ && SSL_session_reused(ssl_) == 1; }

SSL_SESSION* TlsClient::session() const {
  if (last_session_) SSL_SESSION_up_ref(last_session_);
  return last_session_;
}

std::string TlsClient::server_serial() const {
  if (!ssl_) return {};
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (!cert) return {};
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  char* hex = BN_bn2hex(bn);
  std::string out(hex);
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

std::string TlsClient::alpn() const {
  const unsigned char* p = nullptr;
  unsigned int n = 0;
  if (ssl_) SSL_get0_alpn_selected(ssl_, &p, &n);
  return p ? std::string(reinterpret_cast<const char*>(p), n) : std::string();
}

}  // namespace testing_support
