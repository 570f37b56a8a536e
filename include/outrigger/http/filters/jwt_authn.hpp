// The `jwt_authn` filter: checks the JSON Web Token a request carries
// (`Authorization: Bearer ...` by default) against the providers its rules
// require, as Envoy's filter of the same name does. Signatures RS256, ES256
// and EdDSA (Ed25519) are checked with OpenSSL against a provider's JWKS
// file, parsed once when the config loads and again when the file changes
// (never per request); then `iss`, `aud`, `exp` and `nbf` (60 s leeway).
//
// A missing or bad token where a rule requires one is answered 401 with a
// `WWW-Authenticate: Bearer` header (RFC 6750). A good one leaves its claims
// on the exchange (ex.jwt, for rbac's jwt_claim principals), copies the
// claims named in `forward_claims` into request headers (the client's own
// copies of those headers are always removed first), and is removed from the
// request unless `forward: true`. Every check is counted by result in
// outrigger_jwt_authn_total.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "outrigger/http/filter.hpp"
#include "outrigger/http/jwt_claims.hpp"

using EVP_PKEY = struct evp_pkey_st;

namespace outrigger::http {

std::unique_ptr<FilterFactory> make_jwt_authn_filter(const config::FilterSpec& spec, const FilterContext& context,
                                                     std::vector<FilterError>& errors);

namespace jwt {

// One key of a JWKS.
struct Key {
  std::string kid;
  enum class Type { rsa, ec_p256, ed25519 } type;
  std::shared_ptr<EVP_PKEY> key;
};

// A parsed JWKS (RFC 7517): its RSA, EC P-256 and Ed25519 keys. Throws
// std::runtime_error saying what is wrong.
std::vector<Key> parse_jwks(std::string_view json);

struct Expectations {
  std::string issuer;
  std::vector<std::string> audiences;  // empty: any
  std::chrono::seconds leeway{60};
};

// Checks a compact JWS token; on success fills `claims`.
observability::JwtResult verify(std::string_view token, const std::vector<Key>& keys, const Expectations& expect,
                                std::chrono::system_clock::time_point now, boost::json::object& claims);

std::string base64url_decode(std::string_view in, bool& ok);

}  // namespace jwt
}  // namespace outrigger::http
