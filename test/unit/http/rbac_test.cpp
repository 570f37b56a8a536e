#include "http/filters/rbac/config.hpp"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "outrigger/http/jwt_claims.hpp"
#include "outrigger/http/path.hpp"
#include "test_exchange.hpp"

namespace outrigger::http {
namespace {

using boost::beast::http::verb;
using testing::TestExchange;

const char* kPolicy = R"(
type: rbac
roles:
  reader: [{ methods: [GET, HEAD], paths: ["/api/*"] }]
  writer: [{ methods: [POST, PUT, DELETE], paths: ["/api/orders/*"] }]
bindings:
  - role: reader
    principals: [{ identity: "spiffe://cluster.local/ns/shop/sa/*" }]
  - role: writer
    principals: [{ jwt_claim: { name: roles, contains: order-admin } }, { source_ip: 10.0.0.0/8 }]
)";

struct Rbac {
  explicit Rbac(const std::string& yaml)
      : h(yaml, [this](const config::FilterSpec& s, const FilterContext& c, config::YamlReader& y) {
          return make_rbac_factory(s, c, y, [this](std::string_view l) { audit.emplace_back(l); });
        }) {}
  int status(TestExchange& t) { return h.status(t.get()); }
  std::uint64_t count(const std::string& policy, const std::string& decision) {
    return h.count("outrigger_rbac_decisions_total", {"inbound", "ingress", decision, policy});
  }
  std::vector<std::string> audit;  // before h: the sink points here
  testing::FilterHarness h;
};

TEST(Rbac, AllowsByIdentityAndDeniesTheRest) {
  Rbac rbac(kPolicy);
  ASSERT_TRUE(rbac.h.factory) << rbac.h.error_text();
  TestExchange reader(verb::get, "/api/orders/7", "192.168.1.1");
  reader.get().peer_identity = "spiffe://cluster.local/ns/shop/sa/web";
  EXPECT_EQ(rbac.status(reader), 0);

  TestExchange stranger(verb::get, "/api/orders/7", "192.168.1.1");
  stranger.get().peer_identity = "spiffe://cluster.local/ns/other/sa/web";
  EXPECT_EQ(rbac.status(stranger), 403);

  TestExchange anonymous(verb::get, "/api/x", "192.168.1.1");  // no identity never matches an identity glob
  EXPECT_EQ(rbac.status(anonymous), 403);

  TestExchange wrong_method(verb::post, "/api/x", "192.168.1.1");
  wrong_method.get().peer_identity = "spiffe://cluster.local/ns/shop/sa/web";
  EXPECT_EQ(rbac.status(wrong_method), 403);

  EXPECT_EQ(rbac.count("reader", "allowed"), 1u);
  EXPECT_EQ(rbac.count("default", "denied"), 3u);
  ASSERT_EQ(rbac.audit.size(), 3u);
  EXPECT_EQ(rbac.audit[0],
            "rbac deny listener=ingress identity=spiffe://cluster.local/ns/other/sa/web jwt_sub=- source_ip=192.168.1.1 "
            "method=GET path=\"/api/orders/7\" policy=default");
}

TEST(Rbac, AllowsByJwtClaimOrSourceRange) {
  Rbac rbac(kPolicy);
  TestExchange admin(verb::post, "/api/orders/1", "192.168.1.1");
  auto& claims = admin.get().state.emplace<JwtClaims>();
  claims.payload["sub"] = "alice";
  claims.payload["roles"] = boost::json::array{"viewer", "order-admin"};
  EXPECT_EQ(rbac.status(admin), 0);

  TestExchange viewer(verb::delete_, "/api/orders/1", "192.168.1.1");
  auto& viewer_claims = viewer.get().state.emplace<JwtClaims>();
  viewer_claims.payload["sub"] = "bob";
  viewer_claims.payload["roles"] = "viewer";
  EXPECT_EQ(rbac.status(viewer), 403);
  EXPECT_NE(rbac.audit.back().find("jwt_sub=bob"), std::string::npos);

  TestExchange internal(verb::put, "/api/orders/1", "10.200.0.1");
  EXPECT_EQ(rbac.status(internal), 0);
  TestExchange mapped(verb::put, "/api/orders/1", "::ffff:10.0.0.9");  // an IPv4 client on a dual-stack socket
  EXPECT_EQ(rbac.status(mapped), 0);
  EXPECT_EQ(rbac.count("writer", "allowed"), 3u);
}

TEST(Rbac, ShadowModeDeniesNothingButCountsAndLogs) {
  Rbac rbac(std::string(kPolicy) + "mode: shadow\n");
  TestExchange t(verb::get, "/admin", "192.168.1.1");
  EXPECT_EQ(rbac.status(t), 0);
  EXPECT_EQ(rbac.count("default", "shadow_denied"), 1u);
  EXPECT_EQ(rbac.count("default", "denied"), 0u);
  ASSERT_EQ(rbac.audit.size(), 1u);
  EXPECT_EQ(rbac.audit[0].rfind("rbac shadow_deny ", 0), 0u);
}

TEST(Rbac, DefaultAllowAndIPv6Ranges) {
  Rbac rbac(R"(
type: rbac
default: allow
roles: { all: [{}] }
bindings: [{ role: all, principals: [{ source_ip: "fd00::/8" }] }]
)");
  ASSERT_TRUE(rbac.h.factory) << rbac.h.error_text();
  TestExchange v6(verb::get, "/x", "fd12::1");
  EXPECT_EQ(rbac.status(v6), 0);
  TestExchange other(verb::get, "/x", "2001:db8::1");
  EXPECT_EQ(rbac.status(other), 0);  // default: allow
  EXPECT_EQ(rbac.count("all", "allowed"), 1u);
  EXPECT_EQ(rbac.count("default", "allowed"), 1u);
  EXPECT_TRUE(rbac.audit.empty());
}

TEST(Rbac, RefusesEncodedSlashes) {
  Rbac rbac(kPolicy);
  TestExchange t(verb::get, "/api%2F..%2Fadmin", "10.0.0.1");
  EXPECT_EQ(rbac.status(t), 400);
}

TEST(Rbac, ReportsConfigErrorsWithPositions) {
  auto errors_of = [](const std::string& yaml) {
    Rbac rbac(yaml);
    EXPECT_EQ(rbac.h.factory == nullptr, !rbac.h.errors.empty());
    return rbac.h.error_text();
  };
  EXPECT_NE(errors_of("{ type: rbac, roles: { r: [{}] }, bindings: [{ role: nope, principals: [{ any: true }] }] }")
                .find("no role named 'nope'"),
            std::string::npos);
  EXPECT_NE(errors_of("{ type: rbac, roles: { r: [{}] }, bindings: [{ role: r, principals: [{ source_ip: 10.0.0.0/33 }] }] }")
                .find("not an address or CIDR range"),
            std::string::npos);
  EXPECT_NE(errors_of("{ type: rbac, mode: audit, roles: { r: [{}] } }")
                .find("filters[0].mode: invalid value 'audit' (one of: enforce, shadow)"),
            std::string::npos);
  EXPECT_NE(errors_of("{ type: rbac, roles: { r: [{ methods: [GET], pahts: [/x] }] } }").find("did you mean 'paths'"),
            std::string::npos);
  EXPECT_NE(errors_of("{ type: rbac, roles: { r: [{}] }, bindings: [{ role: r, principals: [] }] }")
                .find("expected a non-empty list"),
            std::string::npos);
  EXPECT_EQ(errors_of("type: rbac\nroles:\n  r: [{}]\nbindings:\n  - { role: r, principals: [{ identitty: x }] }\n"),
            "5:31: filters[0].bindings[0].principals[0]: unknown key 'identitty'; did you mean 'identity'?\n");
}

}  // namespace
}  // namespace outrigger::http
