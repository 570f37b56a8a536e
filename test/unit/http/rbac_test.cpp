#include "outrigger/http/filters/rbac.hpp"

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
  explicit Rbac(std::string yaml) {
    config::FilterSpec spec{"rbac", std::make_shared<const YAML::Node>(YAML::Load(yaml)), {1, 1}};
    stats.reset(new observability::ListenerStats{"ingress", "inbound",
                                                 observability::PerWorker<observability::ListenerSlice>(1),
                                                 observability::AuthorityStats(1)});
    factory = make_rbac_filter(spec, {"ingress", stats.get()}, errors, [this](std::string_view l) { audit.emplace_back(l); });
  }
  // The status a request gets: 0 when it passes.
  int status(TestExchange& t) {
    auto r = factory->filter_for_worker(0, 1).on_request(t.get());
    return r ? r->status : 0;
  }
  std::uint64_t count(const std::string& policy, observability::Counter observability::RbacSlice::*which) {
    return ((*stats->rbac_policy(policy))[0].*which).value();
  }
  std::unique_ptr<observability::ListenerStats> stats;
  std::vector<FilterError> errors;
  std::unique_ptr<FilterFactory> factory;
  std::vector<std::string> audit;
};

TEST(Rbac, AllowsByIdentityAndDeniesTheRest) {
  Rbac rbac(kPolicy);
  ASSERT_TRUE(rbac.factory) << (rbac.errors.empty() ? "" : rbac.errors[0].message);
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

  EXPECT_EQ(rbac.count("reader", &observability::RbacSlice::allowed), 1u);
  EXPECT_EQ(rbac.count("default", &observability::RbacSlice::denied), 3u);
  ASSERT_EQ(rbac.audit.size(), 3u);
  EXPECT_EQ(rbac.audit[0],
            "rbac deny listener=ingress identity=spiffe://cluster.local/ns/other/sa/web jwt_sub=- source_ip=192.168.1.1 "
            "method=GET path=\"/api/orders/7\" policy=default");
}

TEST(Rbac, AllowsByJwtClaimOrSourceRange) {
  Rbac rbac(kPolicy);
  TestExchange admin(verb::post, "/api/orders/1", "192.168.1.1");
  auto claims = std::make_shared<JwtClaims>();
  claims->payload["sub"] = "alice";
  claims->payload["roles"] = boost::json::array{"viewer", "order-admin"};
  admin.get().jwt = claims;
  EXPECT_EQ(rbac.status(admin), 0);

  TestExchange viewer(verb::delete_, "/api/orders/1", "192.168.1.1");
  auto viewer_claims = std::make_shared<JwtClaims>();
  viewer_claims->payload["sub"] = "bob";
  viewer_claims->payload["roles"] = "viewer";
  viewer.get().jwt = viewer_claims;
  EXPECT_EQ(rbac.status(viewer), 403);
  EXPECT_NE(rbac.audit.back().find("jwt_sub=bob"), std::string::npos);

  TestExchange internal(verb::put, "/api/orders/1", "10.200.0.1");
  EXPECT_EQ(rbac.status(internal), 0);
  TestExchange mapped(verb::put, "/api/orders/1", "::ffff:10.0.0.9");  // an IPv4 client on a dual-stack socket
  EXPECT_EQ(rbac.status(mapped), 0);
  EXPECT_EQ(rbac.count("writer", &observability::RbacSlice::allowed), 3u);
}

TEST(Rbac, ShadowModeDeniesNothingButCountsAndLogs) {
  Rbac rbac(std::string(kPolicy) + "mode: shadow\n");
  TestExchange t(verb::get, "/admin", "192.168.1.1");
  EXPECT_EQ(rbac.status(t), 0);
  EXPECT_EQ(rbac.count("default", &observability::RbacSlice::shadow_denied), 1u);
  EXPECT_EQ(rbac.count("default", &observability::RbacSlice::denied), 0u);
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
  ASSERT_TRUE(rbac.factory);
  TestExchange v6(verb::get, "/x", "fd12::1");
  EXPECT_EQ(rbac.status(v6), 0);
  TestExchange other(verb::get, "/x", "2001:db8::1");
  EXPECT_EQ(rbac.status(other), 0);  // default: allow
  EXPECT_EQ(rbac.count("all", &observability::RbacSlice::allowed), 1u);
  EXPECT_EQ(rbac.count("default", &observability::RbacSlice::allowed), 1u);
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
    EXPECT_EQ(rbac.factory == nullptr, !rbac.errors.empty());
    std::string out;
    for (const auto& e : rbac.errors) out += std::to_string(e.mark.line) + ": " + e.message + "\n";
    return out;
  };
  EXPECT_NE(errors_of("{ type: rbac, roles: { r: [{}] }, bindings: [{ role: nope, principals: [{ any: true }] }] }")
                .find("no role named 'nope'"),
            std::string::npos);
  EXPECT_NE(errors_of("{ type: rbac, roles: { r: [{}] }, bindings: [{ role: r, principals: [{ source_ip: 10.0.0.0/33 }] }] }")
                .find("not an address or CIDR range"),
            std::string::npos);
  EXPECT_NE(errors_of("{ type: rbac, mode: audit, roles: { r: [{}] } }").find("mode: expected enforce or shadow"),
            std::string::npos);
  EXPECT_NE(errors_of("{ type: rbac, roles: { r: [{ methods: [GET], pahts: [/x] }] } }").find("did you mean 'paths'"),
            std::string::npos);
  EXPECT_NE(errors_of("{ type: rbac, roles: { r: [{}] }, bindings: [{ role: r, principals: [] }] }")
                .find("expected a non-empty list"),
            std::string::npos);
  EXPECT_NE(errors_of("type: rbac\nroles:\n  r: [{}]\nbindings:\n  - { role: r, principals: [{ identitty: x }] }\n")
                .find("5: rbac: bindings[0].principals: unknown key 'identitty'; did you mean 'identity'?"),
            std::string::npos);
}

TEST(TargetNormalization, OneSpellingPerPath) {
  std::string out;
  EXPECT_EQ(normalize_target("/api/orders?x=1", out), TargetCheck::unchanged);
  EXPECT_EQ(normalize_target("/a/.hidden/b", out), TargetCheck::unchanged);
  EXPECT_EQ(normalize_target("/api/../admin", out), TargetCheck::normalized);
  EXPECT_EQ(out, "/admin");
  EXPECT_EQ(normalize_target("/api/./x//y/../%7Ez?q=/../", out), TargetCheck::normalized);
  EXPECT_EQ(out, "/api/x/~z?q=/../");
  EXPECT_EQ(normalize_target("/%61pi/x", out), TargetCheck::normalized);
  EXPECT_EQ(out, "/api/x");
  EXPECT_EQ(normalize_target("/../../etc/passwd", out), TargetCheck::normalized);
  EXPECT_EQ(out, "/etc/passwd");
  EXPECT_EQ(normalize_target("/x/..//public/%61", out), TargetCheck::normalized);
  EXPECT_EQ(out, "/public/a");
  EXPECT_EQ(normalize_target("/a%zz", out), TargetCheck::invalid);
  EXPECT_EQ(normalize_target("http://example/x/../y", out), TargetCheck::unchanged);  // absolute form: left alone
  EXPECT_EQ(normalize_target("/public/..%2Fprivate", out), TargetCheck::unchanged);
  EXPECT_TRUE(has_encoded_separator("/a%2fb"));
  EXPECT_TRUE(has_encoded_separator("/a%5Cb"));
  EXPECT_FALSE(has_encoded_separator("/a%20b"));
}

}  // namespace
}  // namespace outrigger::http
