#include "outrigger/net/detect.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <memory>

namespace outrigger::net {

namespace {

constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// RFC 9110 §5.6.2 token characters (a method is a token).
bool tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// Whether the bytes begin an HTTP/1.x request line (RFC 9112 §3:
// method SP request-target SP HTTP-version CRLF): only the first line is
// looked at, to tell HTTP from other protocols; Beast parses the request.
Detected http1_request_line(std::string_view b) {
  std::size_t i = 0;
  while (i < b.size() && tchar(static_cast<unsigned char>(b[i]))) ++i;
  if (i == b.size()) return i <= 32 ? Detected::need_more : Detected::opaque;  // methods are short
  if (i == 0 || b[i] != ' ') return Detected::opaque;
  const std::size_t target = ++i;
  while (i < b.size() && static_cast<unsigned char>(b[i]) > ' ' && b[i] != 0x7f) ++i;
  if (i == b.size()) return Detected::need_more;
  if (i == target || b[i] != ' ') return Detected::opaque;
  const auto rest = b.substr(i + 1);
  static constexpr std::string_view kVersion = "HTTP/1.";
  const auto n = std::min(rest.size(), kVersion.size());
  if (rest.substr(0, n) != kVersion.substr(0, n)) return Detected::opaque;
  if (rest.size() <= kVersion.size()) return Detected::need_more;
  if (rest[kVersion.size()] != '0' && rest[kVersion.size()] != '1') return Detected::opaque;
  const auto end = rest.substr(kVersion.size() + 1);
  if (end.empty() || end == "\r") return Detected::need_more;
  return end.starts_with("\r\n") ? Detected::http1 : Detected::opaque;
}

// The ClientHello is parsed by OpenSSL, as a server would: a throwaway SSL
// object reads the bytes from a memory BIO and its ClientHello callback,
// which runs once the whole message is in, copies the server_name and ALPN
// extensions and stops the handshake there. Nothing is ever written back.
struct HelloSeen {
  bool complete = false;
  std::string sni, alpn;
};

// A length-prefixed run inside an extension: the bytes, or empty when the
// length does not fit.
std::string_view prefixed(std::string_view& in, std::size_t width) {
  if (in.size() < width) return in = {}, std::string_view{};
  std::size_t n = 0;
  for (std::size_t i = 0; i < width; ++i) n = n << 8 | static_cast<unsigned char>(in[i]);
  in.remove_prefix(width);
  if (n > in.size()) return in = {}, std::string_view{};
  const auto out = in.substr(0, n);
  in.remove_prefix(n);
  return out;
}

int on_client_hello(SSL* ssl, int* alert, void*) {
  auto* seen = static_cast<HelloSeen*>(SSL_get_app_data(ssl));
  seen->complete = true;
  const unsigned char* data = nullptr;
  std::size_t len = 0;
  // server_name (RFC 6066 §3): a list of (type, name); type 0 is a host name.
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &data, &len) == 1) {
    std::string_view ext(reinterpret_cast<const char*>(data), len);
    auto list = prefixed(ext, 2);
    while (list.size() >= 3) {
      const auto type = static_cast<unsigned char>(list[0]);
      list.remove_prefix(1);
      const auto name = prefixed(list, 2);
      if (type == 0 && !name.empty()) {
        seen->sni.assign(name);
        for (auto& c : seen->sni) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        break;
      }
    }
  }
  // ALPN (RFC 7301 §3.1): a list of length-prefixed protocol names.
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &data, &len) == 1) {
    std::string_view ext(reinterpret_cast<const char*>(data), len);
    auto list = prefixed(ext, 2);
    while (!list.empty()) {
      const auto name = prefixed(list, 1);
      if (name.empty()) break;
      if (!seen->alpn.empty()) seen->alpn += ',';
      seen->alpn.append(name);
    }
  }
  *alert = SSL_AD_HANDSHAKE_FAILURE;
  return SSL_CLIENT_HELLO_ERROR;  // seen enough: stop here
}

SSL_CTX* inspector_context() {
  // One per thread, made on first use and kept for the thread's life.
  struct Ctx {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    Ctx() {
      if (ctx) SSL_CTX_set_client_hello_cb(ctx, on_client_hello, nullptr);
    }
    ~Ctx() { SSL_CTX_free(ctx); }
  };
  thread_local Ctx c;
  return c.ctx;
}

Detection client_hello(std::string_view b) {
  // A TLS record: type 22 (handshake), version 3.x, a length; its first
  // message a ClientHello (type 1).
  if (b.size() < 6) return {};
  if (static_cast<unsigned char>(b[1]) != 3 || static_cast<unsigned char>(b[5]) != 1) return {Detected::opaque};
  SSL_CTX* ctx = inspector_context();
  if (!ctx) return {Detected::opaque};
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx), SSL_free);
  if (!ssl) return {Detected::opaque};
  BIO* in = BIO_new_mem_buf(b.data(), static_cast<int>(b.size()));
  BIO* out = BIO_new(BIO_s_null());
  if (!in || !out) {
    BIO_free(in);
    BIO_free(out);
    return {Detected::opaque};
  }
  BIO_set_mem_eof_return(in, -1);  // out of bytes: "want more", not an end of file
  SSL_set_bio(ssl.get(), in, out);  // the SSL owns both now
  HelloSeen seen;
  SSL_set_app_data(ssl.get(), &seen);
  SSL_set_accept_state(ssl.get());
  const int rc = SSL_do_handshake(ssl.get());
  const int err = SSL_get_error(ssl.get(), rc);
  ERR_clear_error();  // the stopped handshake leaves errors on this thread's queue
  if (seen.complete) return {Detected::tls, std::move(seen.sni), std::move(seen.alpn)};
  // The memory BIO ran dry before the ClientHello was whole.
  if (err == SSL_ERROR_WANT_READ && b.size() < kMaxDetectBytes) return {};
  return {Detected::opaque};
}

}  // namespace

Detection detect(std::string_view b) {
  if (b.empty()) return {};
  if (b.size() > kMaxDetectBytes) b = b.substr(0, kMaxDetectBytes);
  if (static_cast<unsigned char>(b[0]) == 0x16) return client_hello(b);
  const auto n = std::min(b.size(), kH2Preface.size());
  if (b.substr(0, n) == kH2Preface.substr(0, n)) {
    if (n == kH2Preface.size()) return {Detected::http2};
    // "PRI * HTTP/2.0" is also a request line's prefix until its version.
    return {};
  }
  const auto line = http1_request_line(b);
  if (line == Detected::need_more && b.size() >= kMaxDetectBytes) return {Detected::opaque};
  return {line};
}

bool server_name_matches(std::string_view pattern, std::string_view name) {
  if (pattern.starts_with("*.")) {
    const auto suffix = pattern.substr(1);  // ".example.com"
    return name.size() > suffix.size() && name.ends_with(suffix);
  }
  return pattern == name;
}

}  // namespace outrigger::net
