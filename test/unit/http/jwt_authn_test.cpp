#include "outrigger/http/filters/jwt_authn.hpp"

#include <gtest/gtest.h>

#include <chrono>

#include "../../integration/support/jwt_signer.hpp"

namespace outrigger::http {
namespace {

using observability::JwtResult;
using testing_support::JwtKey;

const auto kNow = std::chrono::system_clock::from_time_t(1'800'000'000);
const std::string kIss = "https://auth.example.com";

std::string claims(long exp_offset = 3600, std::string extra = "") {
  return "{\"iss\":\"" + kIss + "\",\"sub\":\"alice\",\"aud\":[\"orders\",\"other\"],\"exp\":" +
         std::to_string(1'800'000'000 + exp_offset) + extra + "}";
}

struct JwtVerify : ::testing::Test {
  JwtKey rsa = JwtKey::rsa("r1"), ec = JwtKey::ec("e1"), ed = JwtKey::ed25519("d1");
  std::vector<jwt::Key> keys = jwt::parse_jwks(testing_support::jwks({&rsa, &ec, &ed}));
  jwt::Expectations expect{kIss, {"orders"}};
  JwtResult check(const std::string& token) {
    boost::json::object out;
    return jwt::verify(token, keys, expect, kNow, out);
  }
};

TEST_F(JwtVerify, VerifiesEachAlgorithm) {
  for (const auto* k : {&rsa, &ec, &ed}) {
    boost::json::object out;
    EXPECT_EQ(jwt::verify(k->sign(claims()), keys, expect, kNow, out), JwtResult::allowed) << k->alg();
    EXPECT_EQ(out.at("sub").as_string(), "alice");
  }
}

TEST_F(JwtVerify, ChecksTimesWithLeeway) {
  EXPECT_EQ(check(rsa.sign(claims(-30))), JwtResult::allowed);  // 30 s late: within the 60 s leeway
  EXPECT_EQ(check(rsa.sign(claims(-120))), JwtResult::expired);
  EXPECT_EQ(check(rsa.sign(claims(3600, ",\"nbf\":" + std::to_string(1'800'000'000 + 30)))), JwtResult::allowed);
  EXPECT_EQ(check(rsa.sign(claims(3600, ",\"nbf\":" + std::to_string(1'800'000'000 + 600)))),
            JwtResult::not_yet_valid);
  EXPECT_EQ(check(rsa.sign("{\"iss\":\"" + kIss + "\",\"aud\":\"orders\",\"exp\":\"soon\"}")), JwtResult::expired);
}

TEST_F(JwtVerify, ChecksIssuerAndAudience) {
  EXPECT_EQ(check(rsa.sign("{\"iss\":\"https://evil\",\"aud\":\"orders\"}")), JwtResult::wrong_issuer);
  EXPECT_EQ(check(rsa.sign("{\"iss\":\"" + kIss + "\",\"aud\":\"payments\"}")), JwtResult::wrong_audience);
  EXPECT_EQ(check(rsa.sign("{\"iss\":\"" + kIss + "\"}")), JwtResult::wrong_audience);
  EXPECT_EQ(check(rsa.sign("{\"iss\":\"" + kIss + "\",\"aud\":\"orders\"}")), JwtResult::allowed);
}

TEST_F(JwtVerify, RefusesForgeriesAndStrangers) {
  auto token = rsa.sign(claims());
  token[token.size() - 5] = token[token.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(check(token), JwtResult::bad_signature);
  const auto stranger = JwtKey::rsa("r2");
  EXPECT_EQ(check(stranger.sign(claims())), JwtResult::unknown_key);  // kid r2 is not in the set
  const auto same_kid = JwtKey::rsa("r1");
  EXPECT_EQ(check(same_kid.sign(claims())), JwtResult::bad_signature);  // kid r1, another key
  // A token that claims another algorithm than its key's.
  EXPECT_EQ(check(ec.sign(claims(), "{\"alg\":\"RS256\",\"kid\":\"e1\"}")), JwtResult::bad_signature);
  // alg none and HMAC are never accepted.
  EXPECT_EQ(check(testing_support::b64url("{\"alg\":\"none\"}") + "." + testing_support::b64url(claims()) + "."),
            JwtResult::bad_signature);
  EXPECT_EQ(check(testing_support::b64url("{\"alg\":\"HS256\",\"kid\":\"r1\"}") + "." + testing_support::b64url(claims()) +
                  ".c2ln"),
            JwtResult::bad_signature);
}

TEST_F(JwtVerify, RefusesMalformedTokens) {
  EXPECT_EQ(check("abc"), JwtResult::malformed);
  EXPECT_EQ(check("a.b"), JwtResult::malformed);
  EXPECT_EQ(check("a.b.c.d"), JwtResult::malformed);
  EXPECT_EQ(check("!!!.e30.c2ln"), JwtResult::malformed);
  EXPECT_EQ(check(testing_support::b64url("not json") + ".e30.c2ln"), JwtResult::malformed);
}

TEST_F(JwtVerify, TriesEveryKeyOfTheTypeWithoutAKid) {
  const auto plain = JwtKey::ec("");
  keys = jwt::parse_jwks(testing_support::jwks({&ec, &plain}));
  EXPECT_EQ(check(plain.sign(claims())), JwtResult::allowed);
}

TEST(Jwks, SaysWhatIsWrong) {
  auto what = [](std::string_view text) {
    try {
      jwt::parse_jwks(text);
      return std::string();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
  };
  EXPECT_NE(what("{").find("not JSON"), std::string::npos);
  EXPECT_NE(what("{\"keys\":{}}").find("no \"keys\" array"), std::string::npos);
  EXPECT_NE(what("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"!!\",\"e\":\"AQAB\"}]}").find("base64url"), std::string::npos);
  EXPECT_NE(what("{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}").find("no RSA, EC P-256 or Ed25519 key"),
            std::string::npos);
}

TEST(JwtClaims, ContainsStringsArraysAndScopes) {
  JwtClaims c;
  c.payload["roles"] = boost::json::array{"a", "order-admin"};
  c.payload["scope"] = "read write";
  c.payload["team"] = "shop";
  EXPECT_TRUE(c.contains("roles", "order-admin"));
  EXPECT_FALSE(c.contains("roles", "order"));
  EXPECT_TRUE(c.contains("scope", "write"));
  EXPECT_TRUE(c.contains("team", "shop"));
  EXPECT_FALSE(c.contains("missing", "x"));
}

}  // namespace
}  // namespace outrigger::http
