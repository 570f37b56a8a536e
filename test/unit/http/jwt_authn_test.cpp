#include "http/filters/jwt_authn/config.hpp"
#include "outrigger/http/jwt_claims.hpp"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "../../integration/support/jwt_signer.hpp"
#include "test_exchange.hpp"

namespace outrigger::http {
namespace {

using jwt::JwtResult;
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

// A temporary directory with a JWKS file, gone with the object.
struct KeyFile {
  explicit KeyFile(const std::vector<const JwtKey*>& keys) {
    char tmpl[] = "/tmp/outrigger-jwt-XXXXXX";
    dir = ::mkdtemp(tmpl);
    write(keys);
  }
  ~KeyFile() { std::filesystem::remove_all(dir); }
  void write(const std::vector<const JwtKey*>& keys) const { write(testing_support::jwks(keys)); }
  void write(const std::string& text) const { std::ofstream(path()) << text; }
  std::string path() const { return dir + "/jwks.json"; }
  std::string dir;
};

std::unique_ptr<testing::FilterHarness> build(const std::string& yaml) {
  auto h = std::make_unique<testing::FilterHarness>(yaml);
  EXPECT_EQ(h->factory == nullptr, !h->errors.empty());
  return h;
}

std::string good_claims(const std::string& extra = "") {
  return "{\"iss\":\"" + kIss + "\",\"sub\":\"alice\",\"aud\":\"orders\",\"exp\":" +
         std::to_string(std::time(nullptr) + 3600) + extra + "}";
}

// The filter with provider `corp` (an EC key unless told otherwise) and `rules`.
struct JwtAuthn {
  explicit JwtAuthn(const std::string& rules, const std::vector<const JwtKey*>& keys = {})
      : file(keys.empty() ? std::vector<const JwtKey*>{&key} : keys) {
    h = build("type: jwt_authn\nproviders:\n  - { name: corp, issuer: '" + kIss +
                        "', audiences: [orders], jwks_file: " + file.path() +
                        ", forward_claims: { sub: x-user, level: x-level, admin: x-admin, groups: x-groups, "
                        "name: x-name } }\n" +
                        rules);
    factory = h->factory.get();
  }
  FilterResult run(testing::TestExchange& t) { return h->on_request(t.get()); }
  // The status a request to `target` with `token` gets: 0 when it passes.
  int status(const std::string& target, const std::string& token = "") {
    testing::TestExchange t(boost::beast::http::verb::get, target);
    if (!token.empty()) t.request.set("authorization", "Bearer " + token);
    const auto r = run(t);
    return r ? r->status : 0;
  }

  JwtKey key = JwtKey::ec("k1");
  KeyFile file;
  std::unique_ptr<testing::FilterHarness> h;
  FilterFactory* factory = nullptr;
};

TEST(JwtAuthnFilter, TheFirstMatchingRuleDecides) {
  JwtAuthn f(R"(rules:
  - { match: { path: /api/public } }
  - { match: { prefix: /api/open }, requires: corp, allow_missing: true }
  - { match: { prefix: /api }, requires: corp })");
  ASSERT_TRUE(f.factory);
  EXPECT_EQ(f.status("/api/public"), 0);             // a rule that requires nothing
  EXPECT_EQ(f.status("/api/public/x"), 401);         // `path` is exact: the /api rule decides
  EXPECT_EQ(f.status("/api/open/x"), 0);             // allow_missing: no token is fine
  EXPECT_EQ(f.status("/api/open/x", "a.b.c"), 401);  // ... a bad one is not
  EXPECT_EQ(f.status("/api/open/x", f.key.sign(good_claims())), 0);
  EXPECT_EQ(f.status("/api/x?q=/api/public"), 401);  // the query is not the path
  EXPECT_EQ(f.status("/elsewhere"), 0);              // no rule: no token needed
}

TEST(JwtAuthnFilter, RefusesPathsWithAnEncodedSeparator) {
  JwtAuthn f("rules: [{ match: { prefix: /api }, requires: corp }]");
  ASSERT_TRUE(f.factory);
  // Left as sent by the normalisation; an upstream that decodes before it
  // splits would serve /api without any token having been asked for.
  EXPECT_EQ(f.status("/x%2F..%2Fapi"), 400);
  EXPECT_EQ(f.status("/x%5c..%5capi"), 400);
  EXPECT_EQ(f.status("/x%20y"), 0);  // other encodings are fine
}

TEST(JwtAuthnFilter, WithoutRulesEveryRequestNeedsAToken) {
  JwtAuthn f("");
  ASSERT_TRUE(f.factory);
  EXPECT_EQ(f.status("/anything"), 401);
  EXPECT_EQ(f.status("/anything", f.key.sign(good_claims())), 0);
}

TEST(JwtAuthnFilter, AnswersWithAnRfc6750Challenge) {
  JwtAuthn f("rules: [{ match: { prefix: / }, requires: corp }]");
  testing::TestExchange missing(boost::beast::http::verb::get, "/x");
  missing.request.set("authorization", "Basic YWxpY2U6c2VjcmV0");  // not a bearer token: missing
  auto r = f.run(missing);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(r->reason, "jwt_missing");
  EXPECT_EQ(r->extra.name, "www-authenticate");
  EXPECT_EQ(r->extra.value, "Bearer realm=\"corp\"");

  testing::TestExchange expired(boost::beast::http::verb::get, "/x");
  expired.request.set("authorization",
                      "bearer " + f.key.sign("{\"iss\":\"" + kIss + "\",\"aud\":\"orders\",\"exp\":1000}"));
  r = f.run(expired);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reason, "jwt_invalid");
  EXPECT_EQ(r->extra.value, "Bearer realm=\"corp\", error=\"invalid_token\", error_description=\"expired\"");
  EXPECT_FALSE(expired.get().state.get<JwtClaims>());
  EXPECT_EQ(f.h->count("outrigger_jwt_authn_total", {"inbound", "ingress", "expired"}), 1u);
  EXPECT_EQ(f.h->count("outrigger_jwt_authn_total", {"inbound", "ingress", "missing"}), 1u);
}

TEST(JwtAuthnFilter, ForwardsClaimsAsHeaderTextAndDropsTheToken) {
  JwtAuthn f("rules: [{ match: { prefix: / }, requires: corp }]");
  testing::TestExchange t(boost::beast::http::verb::get, "/x");
  const auto payload = good_claims(R"(,"level":3,"admin":true,"groups":["a","b",7])");
  t.request.set("authorization", "Bearer " + f.key.sign(payload));
  t.request.set("x-admin", "spoofed");
  t.request.set("x-name", "spoofed");  // a claim the token lacks: the client's copy goes all the same
  EXPECT_FALSE(f.run(t));
  EXPECT_EQ(t.request["x-user"], "alice");
  EXPECT_EQ(t.request["x-level"], "3");
  EXPECT_EQ(t.request["x-admin"], "true");
  EXPECT_EQ(t.request["x-groups"], "a,b,7");
  EXPECT_EQ(t.request.count("x-name"), 0u);
  EXPECT_EQ(t.request.count("authorization"), 0u);
  const auto* claims = t.get().state.get<JwtClaims>();
  ASSERT_TRUE(claims);
  EXPECT_EQ(claims->provider, "corp");
  EXPECT_TRUE(claims->contains("groups", "b"));
}

TEST(JwtAuthnFilter, NeverForwardsAClaimThatWouldBreakTheHeaderBlock) {
  JwtAuthn f("rules: [{ match: { prefix: / }, requires: corp }]");
  testing::TestExchange t(boost::beast::http::verb::get, "/x");
  t.request.set("authorization", "Bearer " + f.key.sign(good_claims(R"(,"name":"eve\r\nx-admin: true")")));
  t.request.set("x-name", "spoofed");
  EXPECT_FALSE(f.run(t));
  EXPECT_EQ(t.request.count("x-name"), 0u);
  EXPECT_EQ(t.request["x-user"], "alice");
}

TEST(JwtAuthnFilter, ReadsTheTokenWhereTheProviderSaysAndCanForwardIt) {
  const auto key = JwtKey::ed25519("d1");
  KeyFile file({&key});
  auto h = build("{ type: jwt_authn, providers: [{ name: corp, issuer: x, jwks_file: " + file.path() +
                 ", forward: true, from_headers: [{ name: X-Jwt }] }] }");
  ASSERT_TRUE(h->factory);
  const auto token = key.sign("{\"iss\":\"x\"}");
  testing::TestExchange bearer(boost::beast::http::verb::get, "/");
  bearer.request.set("authorization", "Bearer " + token);  // not where this provider looks
  EXPECT_EQ(h->on_request(bearer.get()).value_or(LocalReply{}).reason, "jwt_missing");
  testing::TestExchange t(boost::beast::http::verb::get, "/");
  t.request.set("x-jwt", token);
  EXPECT_FALSE(h->on_request(t.get()));
  EXPECT_EQ(t.request["x-jwt"], token);  // forward: true
}

TEST(JwtAuthnFilter, TakesANewKeySetOnRefreshAndKeepsItWhenTheNextIsBroken) {
  const auto first = JwtKey::rsa("r1"), second = JwtKey::rsa("r2");
  JwtAuthn f("", {&first});
  ASSERT_TRUE(f.factory);
  auto touch = [&](int hours) {  // same inode, maybe the same size: the mtime tells the change
    std::filesystem::last_write_time(f.file.path(),
                                     std::filesystem::file_time_type::clock::now() + std::chrono::hours(hours));
  };
  EXPECT_EQ(f.status("/", first.sign(good_claims())), 0);
  f.file.write({&second});
  touch(1);
  f.factory->refresh();
  EXPECT_EQ(f.status("/", second.sign(good_claims())), 0);
  EXPECT_EQ(f.status("/", first.sign(good_claims())), 401);
  f.file.write("{\"keys\": [");
  touch(2);
  f.factory->refresh();
  EXPECT_EQ(f.status("/", second.sign(good_claims())), 0);
}

// The errors a config gets, as "LINE:COLUMN: message" lines; DIR is a
// directory with jwks.json (good) and broken.json.
std::string config_errors(std::string yaml) {
  const auto key = JwtKey::ec("k1");
  KeyFile file({&key});
  std::ofstream(file.dir + "/broken.json") << "{\"keys\": [";
  for (auto at = yaml.find("DIR"); at != std::string::npos; at = yaml.find("DIR")) yaml.replace(at, 3, file.dir);
  return build(yaml)->error_text();
}

TEST(JwtAuthnConfig, AcceptsTheDocumentedShape) {
  EXPECT_EQ(config_errors(R"(
type: jwt_authn
providers:
  - name: corp
    issuer: https://auth.example.com
    audiences: [orders]
    jwks_file: DIR/jwks.json
    forward_claims: { sub: x-user, roles: x-user-roles }
    forward: false
    from_headers: [{ name: authorization, value_prefix: "Bearer " }]
rules: [{ match: { prefix: /api }, requires: corp }, { match: { path: /login }, requires: corp, allow_missing: true }]
)"),
            "");
}

TEST(JwtAuthnConfig, SaysWhatIsWrongAndWhere) {
  auto says = [](const std::string& yaml, const std::string& what) {
    const auto errors = config_errors(yaml);
    return errors.find(what) != std::string::npos ? ::testing::AssertionSuccess()
                                                   : ::testing::AssertionFailure() << errors;
  };
  const std::string corp = "{ type: jwt_authn, providers: [{ name: corp, issuer: x, jwks_file: DIR/";
  EXPECT_TRUE(says("{ type: jwt_authn }", "providers: expected a non-empty list"));
  EXPECT_TRUE(says("{ type: jwt_authn, providers: [{ name: corp, isuer: x, jwks_file: DIR/jwks.json }] }",
                   "1:46: filters[0].providers[0]: unknown key 'isuer'; did you mean 'issuer'?"));
  EXPECT_TRUE(says(corp + "jwks.json }], rulez: [] }", "did you mean 'rules'?"));
  EXPECT_TRUE(
      says(corp + "jwks.json }], rules: [{ requires: crop }] }", "rules[0].requires: no provider named 'crop'"));
  EXPECT_TRUE(says(corp + "broken.json }] }", "providers[0].jwks_file: cannot use"));
  EXPECT_TRUE(says(corp + "none.json }] }", "No such file or directory"));
  EXPECT_TRUE(says(corp + "jwks.json }, { name: corp, issuer: y, jwks_file: DIR/jwks.json }] }",
                   "'corp' is already a provider"));
  for (const char* header : {"[x]", "'x y'", "''"})
    EXPECT_TRUE(says(corp + "jwks.json, forward_claims: { sub: " + header + " } }] }",
                     "forward_claims.sub: expected a header name"));
  EXPECT_TRUE(says(corp + "jwks.json, forward: ture }] }", "providers[0].forward: expected true or false"));
  EXPECT_TRUE(says(corp + "jwks.json, audiences: [{ a: b }] }] }", "providers[0].audiences[0]: expected a single value"));
  EXPECT_TRUE(says(corp + "jwks.json }], rules: [{ match: { prefix: /a, path: /b } }] }",
                   "rules[0].match: expected one of 'prefix' or 'path'"));
  EXPECT_TRUE(says(corp + "jwks.json }], rules: [{ match: { prefix: /a }, allow_missing: 1x }] }",
                   "rules[0].allow_missing: expected true or false"));
}

}  // namespace
}  // namespace outrigger::http
