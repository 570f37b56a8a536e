// The JWT parser and verifier of jwt_authn (http/filters/jwt_authn/jwt.hpp):
// the input as a compact token against a fixed key set, and as a JWKS. A
// bad token is a result, never an exception; a bad JWKS is a std::runtime_error that says
// what is wrong, never another exception or a crash.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "fixture_keys.hpp"
#include "http/filters/jwt_authn/jwt.hpp"
#include "outrigger/http/jwt_claims.hpp"

namespace {

using namespace outrigger::http;

const auto kNow = std::chrono::system_clock::from_time_t(1'800'000'000);

const std::vector<jwt::Key>& keys() {
  static const auto k = jwt::parse_jwks(outrigger::fuzz::kJwks);
  return k;
}

void verify(std::string_view token, const std::vector<jwt::Key>& with) {
  static const jwt::Expectations expect{std::string(outrigger::fuzz::kIssuer), {"orders"}};
  boost::json::object claims;
  const auto result = jwt::verify(token, with, expect, kNow, claims);
  if (result == jwt::JwtResult::allowed) {
    JwtClaims c{"fuzz", std::move(claims)};
    (void)c.contains("roles", "order-admin");
    (void)c.contains("scope", "write");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  verify(in, keys());
  bool ok = false;
  (void)jwt::base64url_decode(in, ok);
  if (!in.empty() && in.front() == '{') {
    try {
      const auto parsed = jwt::parse_jwks(in);
      verify(outrigger::fuzz::kToken, parsed);  // the fixed token against the input's keys
    } catch (const std::runtime_error&) {
      // a JWKS the loader refuses, with a message
    }
  }
  return 0;
}
