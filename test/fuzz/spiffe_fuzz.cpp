// The SPIFFE/SAN extraction of tls/context.hpp on certificates made from the
// input: d2i_X509 (the parse OpenSSL runs on a peer's certificate), then
// identity_of, which takes the spiffe:// URI SAN, else the first URI SAN,
// else the first DNS SAN; and identity_matches, which rbac and the
// listeners' allowed identities use. An identity, when there is one, matches
// itself and "*".
#include <openssl/x509.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "outrigger/tls/context.hpp"

namespace {

void check(bool ok, const char* what, const std::string& identity) {
  if (ok) return;
  std::fprintf(stderr, "spiffe: %s: [%s]\n", what, identity.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const unsigned char* p = data;
  X509* cert = d2i_X509(nullptr, &p, static_cast<long>(size));
  if (!cert) return 0;
  const auto identity = outrigger::tls::identity_of(cert);
  X509_free(cert);
  if (identity.empty()) {
    check(!outrigger::tls::identity_matches("*", identity), "an empty identity matches", identity);
    return 0;
  }
  check(outrigger::tls::identity_matches("*", identity), "an identity does not match *", identity);
  check(outrigger::tls::identity_matches(identity, identity), "an identity does not match itself", identity);
  (void)outrigger::tls::identity_matches("spiffe://cluster.local/ns/*/sa/*", identity);
  return 0;
}
