#include "outrigger/tls/context.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/verify_context.hpp>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "outrigger/core/glob.hpp"

namespace outrigger::tls {

namespace ssl = boost::asio::ssl;

SessionCache::~SessionCache() {
  if (last_) SSL_SESSION_free(last_);
}

void SessionCache::put(SSL_SESSION* s) {
  std::lock_guard lock(mutex_);
  if (last_) SSL_SESSION_free(last_);
  last_ = s;
}

SSL_SESSION* SessionCache::get() {
  std::lock_guard lock(mutex_);
  if (last_ && SSL_SESSION_is_resumable(last_) == 1) {
    SSL_SESSION_up_ref(last_);
    return last_;
  }
  return nullptr;
}

Loaded::Loaded() = default;
Loaded::~Loaded() = default;

namespace {

// TLS 1.2 suites with forward secrecy and AEAD only; TLS 1.3's are OpenSSL's defaults.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
    "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";
constexpr unsigned char kSessionContext[] = "outrigger";

std::string openssl_error() {
  std::string out;
  while (const auto e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown error" : out;
}

[[noreturn]] void fail(std::string_view key, const std::string& file, std::string_view why) {
  throw std::runtime_error(fmt::format("tls.{}: cannot use '{}': {}", key, file, why));
}

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                void* arg) {
  const auto& ours = static_cast<const Loaded*>(arg)->alpn;
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, reinterpret_cast<const unsigned char*>(ours.data()),
                            static_cast<unsigned>(ours.size()), in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;  // go on without ALPN; the client decides
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// Our slot in an SSL_CTX for its Loaded (Asio uses the app-data slot).
int loaded_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// Client contexts keep the last session an endpoint gave them (TLS 1.3 sends
// it after the handshake), to resume the next connection with.
int keep_session(SSL* ssl, SSL_SESSION* session) {
  auto* loaded = static_cast<Loaded*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), loaded_index()));
  if (!loaded) return 0;
  loaded->sessions.put(session);
  return 1;  // we keep the reference
}

std::int64_t expiry_of(X509* cert) {
  std::tm tm{};
  if (!cert || ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) return 0;
  return static_cast<std::int64_t>(timegm(&tm));
}

// A file that is not there or not readable, said plainly (OpenSSL would
// bury it under three library errors).
void require_readable(std::string_view key, const std::string& file) {
  if (!file.empty() && ::access(file.c_str(), R_OK) != 0) fail(key, file, std::strerror(errno));
}

std::shared_ptr<Loaded> load(const config::Tls& s, Side side, const std::string& alpn) {
  require_readable("cert", s.cert);
  require_readable("key", s.key);
  require_readable("ca", s.ca);
  ERR_clear_error();
  auto loaded = std::make_shared<Loaded>();
  loaded->alpn = alpn;
  loaded->context = std::make_unique<ssl::context>(side == Side::server ? ssl::context::tls_server
                                                                         : ssl::context::tls_client);
  SSL_CTX* ctx = loaded->context->native_handle();
  SSL_CTX_set_min_proto_version(ctx, s.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_cipher_list(ctx, kTls12Ciphers);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_ex_data(ctx, loaded_index(), loaded.get());

  if (!s.cert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, s.cert.c_str()) != 1) fail("cert", s.cert, openssl_error());
    if (SSL_CTX_use_PrivateKey_file(ctx, s.key.c_str(), SSL_FILETYPE_PEM) != 1) fail("key", s.key, openssl_error());
    if (SSL_CTX_check_private_key(ctx) != 1) fail("key", s.key, "it does not match the certificate in " + s.cert);
    X509* leaf = SSL_CTX_get0_certificate(ctx);
    loaded->identity = identity_of(leaf);
    loaded->not_after = expiry_of(leaf);
  }

  int verify = SSL_VERIFY_NONE;
  if (!s.ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, s.ca.c_str(), nullptr) != 1) fail("ca", s.ca, openssl_error());
    verify = side == Side::server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER;
  } else if (side == Side::client) {
    // No CA of its own: a public endpoint, checked against the system's CAs.
    SSL_CTX_set_default_verify_paths(ctx);
    verify = SSL_VERIFY_PEER;
  }
  loaded->context->set_verify_mode(verify);
  if (!s.verify_identity.empty()) {
    // The leaf's identity is checked inside the handshake, so that a peer
    // that does not match gets an alert, not a connection that later closes.
    loaded->context->set_verify_callback([patterns = s.verify_identity](bool preverified, ssl::verify_context& vc) {
      X509_STORE_CTX* store = vc.native_handle();
      if (!preverified || X509_STORE_CTX_get_error_depth(store) != 0) return preverified;
      const auto id = identity_of(X509_STORE_CTX_get_current_cert(store));
      for (const auto& p : patterns)
        if (identity_matches(p, id)) return true;
      X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
      return false;
    });
  }

  if (side == Side::server) {
    SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, loaded.get());
  } else {
    SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(alpn.data()), static_cast<unsigned>(alpn.size()));
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, keep_session);
  }
  return loaded;
}

}  // namespace

std::string alpn_for(config::Protocol protocol) {
  using namespace std::string_literals;
  switch (protocol) {
    case config::Protocol::http1: return "\x08http/1.1"s;
    case config::Protocol::http2: return "\x02h2"s;
    case config::Protocol::tcp: return {};  // bytes, no application protocol to agree on
    case config::Protocol::auto_detect: break;
  }
  return "\x02h2\x08http/1.1"s;
}

std::string_view alpn_selected(const SSL* ssl) {
  const unsigned char* name = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl, &name, &len);
  return {reinterpret_cast<const char*>(name), len};
}

Context::Context(const config::Tls& settings, Side side, observability::TlsMaterialStats* stats, std::string alpn)
    : settings_(settings), side_(side), stats_(stats), alpn_(std::move(alpn)) {
  stamps_ = stamps();
  auto loaded = load(settings_, side_, alpn_);
  if (stats_) stats_->cert_not_after = loaded->not_after;
  current_.store(std::move(loaded), std::memory_order_release);
}

Context::~Context() = default;

void Context::prepare_client(SSL* ssl, const Loaded& material) const {
  if (!settings_.sni.empty()) {
    SSL_set_tlsext_host_name(ssl, settings_.sni.c_str());
    // Without a CA of its own the endpoint is checked like a public site: by name.
    if (settings_.ca.empty()) SSL_set1_host(ssl, settings_.sni.c_str());
  }
  if (SSL_SESSION* session = material.sessions.get()) {
    SSL_set_session(ssl, session);
    SSL_SESSION_free(session);
  }
}

std::string Context::owner() const {
  if (!stats_) return "tls";
  return stats_->listener.empty() ? "cluster " + stats_->cluster : "listener " + stats_->listener;
}

std::array<Context::Stamp, 3> Context::stamps() const {
  std::array<Stamp, 3> out{};
  const std::string* files[] = {&settings_.cert, &settings_.key, &settings_.ca};
  for (std::size_t i = 0; i < out.size(); ++i) {
    struct stat st {};
    if (files[i]->empty() || ::stat(files[i]->c_str(), &st) != 0) continue;
    out[i] = {st.st_dev, st.st_ino, st.st_size,
              static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
  }
  return out;
}

void Context::refresh() {
  const auto now = stamps();
  if (now == stamps_) return;
  stamps_ = now;  // a broken version is not retried until the files change again
  try {
    auto next = load(settings_, side_, alpn_);
    if (side_ == Side::server) {
      // Session tickets issued before the rotation still resume.
      unsigned char keys[80];
      SSL_CTX* old_ctx = current()->context->native_handle();
      if (SSL_CTX_get_tlsext_ticket_keys(old_ctx, keys, sizeof keys) == 1)
        SSL_CTX_set_tlsext_ticket_keys(next->context->native_handle(), keys, sizeof keys);
    }
    if (stats_) {
      stats_->cert_not_after = next->not_after;
      ++stats_->reloads_ok;
    }
    current_.store(std::move(next), std::memory_order_release);
    spdlog::info("{}: reloaded the TLS files", owner());
  } catch (const std::exception& e) {
    if (stats_) ++stats_->reloads_failed;
    spdlog::error("{}: TLS files rejected, the previous ones keep serving: {}", owner(), e.what());
  }
}

std::string identity_of(X509* cert) {
  if (!cert) return {};
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (!names) return {};
  std::string spiffe, uri, dns;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type != GEN_URI && n->type != GEN_DNS) continue;
    const ASN1_IA5STRING* s = n->type == GEN_URI ? n->d.uniformResourceIdentifier : n->d.dNSName;
    std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                      static_cast<std::size_t>(ASN1_STRING_length(s)));
    if (n->type == GEN_URI) {
      if (spiffe.empty() && value.starts_with("spiffe://")) spiffe = value;
      if (uri.empty()) uri = std::move(value);
    } else if (dns.empty()) {
      dns = std::move(value);
    }
  }
  GENERAL_NAMES_free(names);
  return !spiffe.empty() ? spiffe : !uri.empty() ? uri : dns;
}

bool identity_matches(std::string_view pattern, std::string_view id) {
  return !id.empty() && core::glob_match(pattern, id);
}

std::string xfcc_element(SSL* ssl, std::string_view local_identity) {
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (!peer) return {};
  std::string out;
  if (!local_identity.empty()) out += fmt::format("By={};", local_identity);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(peer, EVP_sha256(), digest, &len) == 1) {
    out += "Hash=";
    for (unsigned int i = 0; i < len; ++i) out += fmt::format("{:02x}", digest[i]);
  }
  // The subject, RFC 2253, quoted (a quote or backslash in it escaped).
  if (BIO* bio = BIO_new(BIO_s_mem())) {
    X509_NAME_print_ex(bio, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    out += ";Subject=\"";
    for (long i = 0; i < n; ++i) {
      if (data[i] == '"' || data[i] == '\\') out += '\\';
      out += data[i];
    }
    out += '"';
    BIO_free(bio);
  }
  if (auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(peer, NID_subject_alt_name, nullptr, nullptr))) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
      if (n->type != GEN_URI && n->type != GEN_DNS) continue;
      const ASN1_IA5STRING* s = n->type == GEN_URI ? n->d.uniformResourceIdentifier : n->d.dNSName;
      out += n->type == GEN_URI ? ";URI=" : ";DNS=";
      out.append(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<std::size_t>(ASN1_STRING_length(s)));
    }
    GENERAL_NAMES_free(names);
  }
  return out;
}

observability::TlsFailure classify_failure(SSL* ssl, const boost::system::error_code& ec) {
  using observability::TlsFailure;
  if (ssl) {
    switch (SSL_get_verify_result(ssl)) {
      case X509_V_OK: break;
      case X509_V_ERR_CERT_HAS_EXPIRED:
      case X509_V_ERR_CERT_NOT_YET_VALID: return TlsFailure::expired;
      case X509_V_ERR_APPLICATION_VERIFICATION: return TlsFailure::identity_mismatch;
      default: return TlsFailure::unknown_ca;  // no path to a trusted CA, or a broken chain
    }
  }
  if (ec.category() == boost::asio::error::get_ssl_category()) {
    switch (ERR_GET_REASON(static_cast<unsigned long>(ec.value()))) {
      case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED: return TlsFailure::no_client_cert;
      case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
      case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE: return TlsFailure::unknown_ca;
      case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED: return TlsFailure::expired;
      default: break;
    }
  }
  return TlsFailure::protocol;
}

}  // namespace outrigger::tls
