// TLS for one `tls:` block: the OpenSSL context built from its files (used
// through boost::asio::ssl), swapped for a new one when the files change, and
// what a finished handshake says about the peer (its SPIFFE identity, the
// x-forwarded-client-cert element, why it failed).
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <boost/system/error_code.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "outrigger/config/config.hpp"
#include "outrigger/observability/stats.hpp"

namespace boost::asio::ssl {
class context;
}
using SSL = struct ssl_st;
using SSL_SESSION = struct ssl_session_st;
using X509 = struct x509_st;

namespace outrigger::tls {

enum class Side { server, client };

// The sessions a client context was given, to resume the next handshake with.
class SessionCache {
 public:
  ~SessionCache();
  void put(SSL_SESSION* s);  // takes ownership
  SSL_SESSION* get();        // a new reference (SSL_SESSION_free it), or null

 private:
  std::mutex mutex_;  // taken once per new upstream connection, never per request
  SSL_SESSION* last_ = nullptr;
};

// One loaded version of the files. Connections keep the version they started
// with alive (their SSL objects use its context).
struct Loaded {
  Loaded();
  ~Loaded();
  std::unique_ptr<boost::asio::ssl::context> context;
  std::string identity;         // our certificate's identity (see identity_of); empty without one
  std::int64_t not_after = 0;   // our certificate's expiry, seconds since the epoch
  std::string alpn;             // ALPN wire form: what a server accepts, in its order
  mutable SessionCache sessions;  // client side (shared by the connections made from it)
};

// ALPN's wire form (length-prefixed names) of what a listener or a cluster
// speaks: h2 before http/1.1 when both.
std::string alpn_for(config::Protocol protocol);

// The ALPN name under which one Outrigger sends another opaque TCP in mTLS
// (Istio's sidecars agree on names of their own the same way): the inbound
// side hands such a connection to a TCP tunnel instead of its HTTP codec.
inline constexpr std::string_view kTcpAlpn = "outrigger-tcp";
inline constexpr std::string_view kTcpAlpnWire = "\x0doutrigger-tcp";

// The protocol `ssl` agreed on by ALPN; empty when none.
std::string_view alpn_selected(const SSL* ssl);

class Context {
 public:
  // Loads the files now; throws std::runtime_error naming the key and the
  // file that could not be used. `alpn`: the protocols offered (a client) or
  // accepted (a server), in order of preference (see alpn_for).
  Context(const config::Tls& settings, Side side, observability::TlsMaterialStats* stats = nullptr,
          std::string alpn = alpn_for(config::Protocol::http1));
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // What a new handshake uses. Any thread; once per connection.
  std::shared_ptr<const Loaded> current() const { return current_.load(std::memory_order_acquire); }
  // Main thread: reloads when the cert, key or CA file changed (a Kubernetes
  // `..data` symlink swap included). A new version that fails to load is
  // logged and counted, and the old one keeps serving.
  void refresh();

  const config::Tls& settings() const { return settings_; }
  Side side() const { return side_; }

  // Client side: readies `ssl`, made from `material`, for a handshake with an
  // endpoint: the server name, and the session to resume, if any.
  void prepare_client(SSL* ssl, const Loaded& material) const;

 private:
  struct Stamp {  // what stat() says of a file, following symlinks
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    std::int64_t mtime_ns = 0;
    bool operator==(const Stamp&) const = default;
  };
  std::array<Stamp, 3> stamps() const;
  std::string owner() const;  // "listener NAME" or "cluster NAME", for the log

  config::Tls settings_;
  Side side_;
  observability::TlsMaterialStats* stats_;
  std::string alpn_;
  std::array<Stamp, 3> stamps_;
  std::atomic<std::shared_ptr<const Loaded>> current_;
};

// The identity a certificate proves: its spiffe:// URI SAN, else its first
// URI SAN, else its first DNS SAN; empty when it has none of these.
std::string identity_of(X509* cert);

// True when `identity` matches `pattern`, where '*' matches any run of characters.
bool identity_matches(std::string_view pattern, std::string_view identity);

// The verified peer of `ssl` as an x-forwarded-client-cert element, in
// Envoy's format: By=<local>;Hash=<sha256 of the DER>;Subject="...";URI=...;DNS=...
std::string xfcc_element(SSL* ssl, std::string_view local_identity);

// Why a handshake on `ssl` failed with `ec`.
observability::TlsFailure classify_failure(SSL* ssl, const boost::system::error_code& ec);

}  // namespace outrigger::tls
