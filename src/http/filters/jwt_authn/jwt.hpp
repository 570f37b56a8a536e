// JSON Web Tokens for jwt_authn: JWKS parsing (RFC 7517) and compact JWS
// verification with OpenSSL 3 (EVP and OSSL_PARAM only): RS256, ES256 and
// EdDSA (Ed25519); then `iss`, `aud`, `exp` and `nbf` with a leeway.
#pragma once

#include <openssl/types.h>

#include <array>
#include <boost/json/object.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace outrigger::http::jwt {

// How a check ended (the `result` label of outrigger_jwt_authn_total).
enum class JwtResult : std::uint8_t {
  allowed,         // a token verified
  missing,         // a rule required a token and none came
  malformed,       // not a JWT, or its JSON or base64url is broken
  bad_signature,   // the signature does not verify, or an algorithm not allowed
  unknown_key,     // no key in the provider's key set matches the token's kid
  expired,         // exp is past (leeway included)
  not_yet_valid,   // nbf is ahead (leeway included)
  wrong_issuer,
  wrong_audience,
};
inline constexpr std::array<std::string_view, 9> kJwtResultNames{
    "allowed", "missing", "malformed", "bad_signature", "unknown_key", "expired", "not_yet_valid", "wrong_issuer",
    "wrong_audience"};

// One key of a JWKS.
struct Key {
  std::string kid;
  enum class Type { rsa, ec_p256, ed25519 } type;
  std::shared_ptr<EVP_PKEY> key;
};

// A parsed JWKS: its RSA, EC P-256 and Ed25519 keys. Throws
// std::runtime_error saying what is wrong.
std::vector<Key> parse_jwks(std::string_view json);

struct Expectations {
  std::string issuer;
  std::vector<std::string> audiences;  // empty: any
  std::chrono::seconds leeway{60};
};

// Checks a compact JWS token; on success fills `claims`.
JwtResult verify(std::string_view token, const std::vector<Key>& keys, const Expectations& expect,
                 std::chrono::system_clock::time_point now, boost::json::object& claims);

std::string base64url_decode(std::string_view in, bool& ok);

}  // namespace outrigger::http::jwt
