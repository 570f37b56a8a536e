// jwt_authn as clients see it: 401 with WWW-Authenticate for missing and bad
// tokens, claims forwarded (and never spoofed), the token not forwarded, the
// key set reloaded when its file changes, and claims as rbac principals.
#include <gtest/gtest.h>

#include <ctime>

#include "support/jwt_signer.hpp"
#include "support/net.hpp"
#include "support/pki.hpp"

namespace {

using namespace testing_support;

const std::string kIss = "https://auth.example.com";

std::string token_claims(long exp_from_now = 3600, const std::string& aud = "orders", const std::string& extra = "") {
  return "{\"iss\":\"" + kIss + "\",\"sub\":\"alice\",\"roles\":[\"viewer\",\"order-admin\"],\"aud\":\"" + aud +
         "\",\"exp\":" + std::to_string(std::time(nullptr) + exp_from_now) + extra + "}";
}

struct JwtProxy {
  JwtProxy(const std::vector<const JwtKey*>& keys, const std::string& more_filters = "") {
    jwks_path = pki.dir() + "/jwks.json";
    write_file_atomically(jwks_path, jwks(keys));
    proxy = std::make_unique<Proxy>(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
file_watch_interval: 50ms
listeners:
  - name: ingress
    address: 127.0.0.1:0
    filters:
      - type: jwt_authn
        providers:
          - name: corp
            issuer: {ISS}
            audiences: [orders]
            jwks_file: {JWKS}
            forward_claims: { sub: x-user, roles: x-user-roles }
        rules: [{ match: { prefix: /api }, requires: corp }]
      {MORE}
    routes: [{ cluster: app }]
clusters:
  - { name: app, endpoints: [127.0.0.1:{APP}] }
)",
                                         {{"ISS", kIss}, {"JWKS", jwks_path}, {"APP", std::to_string(app.port())},
                                          {"MORE", more_filters}}));
  }
  int get(const std::string& target, const std::string& token, Response* out = nullptr,
          std::vector<std::pair<std::string, std::string>> headers = {}) {
    if (!token.empty()) headers.emplace_back("authorization", "Bearer " + token);
    auto s = Socket::connect(proxy->port());
    if (!s.send(request_text("GET", target, headers))) return -1;
    auto r = s.read_response();
    if (!r) return -1;
    if (out) *out = *r;
    return r->result_int();
  }
  TestPki pki;  // for its temporary directory
  std::string jwks_path;
  FakeUpstream app;
  std::unique_ptr<Proxy> proxy;
};

std::string counted(const std::string& result, int n) {
  return "outrigger_jwt_authn_total{direction=\"inbound\",listener=\"ingress\",result=\"" + result + "\"} " +
         std::to_string(n);
}

TEST(JwtAuthn, ForwardsTheClaimsOfAGoodToken) {
  const auto key = JwtKey::ec("k1");
  JwtProxy p({&key});
  EXPECT_EQ(p.get("/api/orders", key.sign(token_claims()), nullptr, {{"x-user", "mallory"}}), 200);
  const auto up = p.app.last_request();
  EXPECT_EQ(up["x-user"], "alice");
  EXPECT_EQ(up["x-user-roles"], "viewer,order-admin");
  EXPECT_EQ(up.count("authorization"), 0u);  // forward: false, as Envoy
  // Outside the rules no token is needed, and a forged claim header never passes.
  EXPECT_EQ(p.get("/health", "", nullptr, {{"x-user", "mallory"}}), 200);
  EXPECT_EQ(p.app.last_request().count("x-user"), 0u);
  EXPECT_TRUE(has(metrics(*p.proxy), counted("allowed", 1)));
}

TEST(JwtAuthn, AnswersUnauthorizedWithAChallenge) {
  const auto key = JwtKey::rsa("k1"), stranger = JwtKey::rsa("k2"), impostor = JwtKey::rsa("k1");
  JwtProxy p({&key});
  Response r;
  EXPECT_EQ(p.get("/api/x", "", &r), 401);
  EXPECT_EQ(r["www-authenticate"], "Bearer realm=\"corp\"");
  EXPECT_EQ(r["x-outrigger-error"], "jwt_missing");
  EXPECT_EQ(p.get("/api/x", key.sign(token_claims(-3600)), &r), 401);
  EXPECT_EQ(r["www-authenticate"], "Bearer realm=\"corp\", error=\"invalid_token\", error_description=\"expired\"");
  EXPECT_EQ(p.get("/api/x", key.sign(token_claims(3600, "payments")), &r), 401);
  EXPECT_NE(std::string(r["www-authenticate"]).find("wrong_audience"), std::string::npos);
  EXPECT_EQ(p.get("/api/x", impostor.sign(token_claims()), &r), 401);
  EXPECT_NE(std::string(r["www-authenticate"]).find("bad_signature"), std::string::npos);
  EXPECT_EQ(p.get("/api/x", stranger.sign(token_claims()), &r), 401);
  EXPECT_NE(std::string(r["www-authenticate"]).find("unknown_key"), std::string::npos);
  EXPECT_EQ(p.app.requests(), 0);
  const auto text = metrics(*p.proxy);
  for (const char* result : {"missing", "expired", "wrong_audience", "bad_signature", "unknown_key"})
    EXPECT_TRUE(has(text, counted(result, 1))) << result << "\n" << text;
}

TEST(JwtAuthn, ReloadsTheKeySetWhenItsFileChanges) {
  const auto old_key = JwtKey::ed25519("old"), new_key = JwtKey::ed25519("new");
  JwtProxy p({&old_key});
  EXPECT_EQ(p.get("/api/x", old_key.sign(token_claims())), 200);
  EXPECT_EQ(p.get("/api/x", new_key.sign(token_claims())), 401);
  write_file_atomically(p.jwks_path, jwks({&new_key}));
  EXPECT_TRUE(eventually([&] { return p.get("/api/x", new_key.sign(token_claims())) == 200; }));
  EXPECT_EQ(p.get("/api/x", old_key.sign(token_claims())), 401);
  // A broken file is refused; the keys in force stay.
  write_file_atomically(p.jwks_path, "{\"keys\": [ broken");
  EXPECT_TRUE(eventually([&] {
    return has(metrics(*p.proxy),
               "outrigger_jwt_jwks_reloads_total{direction=\"inbound\",listener=\"ingress\",provider=\"corp\",result=\"failure\"} 1");
  })) << metrics(*p.proxy);
  EXPECT_EQ(p.get("/api/x", new_key.sign(token_claims())), 200);
}

TEST(JwtAuthn, ClaimsAreRbacPrincipals) {
  const auto key = JwtKey::ec("k1");
  JwtProxy p({&key}, R"(- { type: rbac, roles: { writer: [{ paths: ["/api/orders/*"] }] },
          bindings: [{ role: writer, principals: [{ jwt_claim: { name: roles, contains: order-admin } }] }] })");
  EXPECT_EQ(p.get("/api/orders/1", key.sign(token_claims())), 200);
  const auto viewer = "{\"iss\":\"" + kIss + "\",\"sub\":\"bob\",\"roles\":\"viewer\",\"aud\":\"orders\",\"exp\":" +
                      std::to_string(std::time(nullptr) + 3600) + "}";
  EXPECT_EQ(p.get("/api/orders/1", key.sign(viewer)), 403);
}

TEST(JwtAuthn, AnUnreadableKeySetIsAConfigError) {
  try {
    Proxy proxy(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    filters: [{ type: jwt_authn, providers: [{ name: corp, issuer: x, jwks_file: /nonexistent/jwks.json }] }]
    routes: [{ direct_response: { status: 200 } }]
)");
    FAIL() << "the config was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("jwks_file: cannot use '/nonexistent/jwks.json'"), std::string::npos)
        << e.what();
  }
}

}  // namespace
