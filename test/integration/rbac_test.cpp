// The rbac filter as clients see it: 403 for what no binding allows, shadow
// mode, paths judged after normalisation, policies that change with a reload,
// and mTLS identities as principals.
#include <gtest/gtest.h>

#include "support/net.hpp"
#include "support/pki.hpp"
#include "support/tls_client.hpp"

namespace {

using namespace testing_support;

std::string config(std::uint16_t app, const std::string& rbac, const std::string& tls = "") {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    {TLS}
    filters:
      - {RBAC}
    routes: [{ cluster: app }]
clusters:
  - { name: app, endpoints: [127.0.0.1:{APP}] }
)",
              {{"APP", std::to_string(app)}, {"RBAC", rbac}, {"TLS", tls}});
}

const std::string kReaders = R"({ type: rbac, roles: { reader: [{ methods: [GET], paths: ["/public/*"] }] },
        bindings: [{ role: reader, principals: [{ source_ip: 127.0.0.0/8 }] }] })";

int status_of(std::uint16_t port, std::string_view method, const std::string& target, Response* out = nullptr) {
  auto s = Socket::connect(port);
  if (!s.send(request_text(method, target))) return -1;
  auto r = s.read_response();
  if (!r) return -1;
  if (out) *out = *r;
  return r->result_int();
}

std::string series(const std::string& decision, const std::string& policy, int n) {
  return "outrigger_rbac_decisions_total{direction=\"inbound\",listener=\"ingress\",decision=\"" + decision +
         "\",policy=\"" + policy + "\"} " + std::to_string(n);
}

TEST(RbacFilter, DeniesWhatNoBindingAllows) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), kReaders));
  Response denied;
  EXPECT_EQ(status_of(proxy.port(), "GET", "/public/a"), 200);
  EXPECT_EQ(status_of(proxy.port(), "POST", "/public/a", &denied), 403);
  EXPECT_EQ(denied["x-outrigger-error"], "rbac_denied");
  EXPECT_EQ(status_of(proxy.port(), "GET", "/private"), 403);
  EXPECT_EQ(app.requests(), 1);
  const auto text = metrics(proxy);
  EXPECT_TRUE(has(text, series("allowed", "reader", 1))) << text;
  EXPECT_TRUE(has(text, series("denied", "default", 2)));
}

TEST(RbacFilter, JudgesTheNormalisedPath) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), kReaders));
  EXPECT_EQ(status_of(proxy.port(), "GET", "/public/../private"), 403);
  EXPECT_EQ(status_of(proxy.port(), "GET", "/x/..//public/%61"), 200);
  EXPECT_EQ(app.last_request().target(), "/public/a");  // the upstream serves what was authorised
  EXPECT_EQ(status_of(proxy.port(), "GET", "/public/..%2Fprivate"), 400);
}

TEST(RbacFilter, ShadowModeOnlyCounts) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), R"({ type: rbac, mode: shadow, roles: { reader: [{ paths: ["/public/*"] }] },
        bindings: [{ role: reader, principals: [{ any: true }] }] })"));
  EXPECT_EQ(status_of(proxy.port(), "GET", "/private"), 200);
  EXPECT_EQ(status_of(proxy.port(), "GET", "/public/x"), 200);
  const auto text = metrics(proxy);
  EXPECT_TRUE(has(text, series("shadow_denied", "default", 1))) << text;
  EXPECT_TRUE(has(text, series("shadow_allowed", "reader", 1)));
}

TEST(RbacFilter, AReloadChangesThePolicy) {
  FakeUpstream app;
  Proxy proxy(config(app.port(), kReaders));
  EXPECT_EQ(status_of(proxy.port(), "GET", "/private"), 403);
  const auto errors = proxy.server().reload(parse_config(config(app.port(), R"({ type: rbac, roles: { all: [{}] },
        bindings: [{ role: all, principals: [{ source_ip: 127.0.0.1 }] }] })")));
  ASSERT_TRUE(errors.empty()) << errors.front();
  EXPECT_TRUE(eventually([&] { return status_of(proxy.port(), "GET", "/private") == 200; }));
}

TEST(RbacFilter, MutualTlsIdentitiesArePrincipals) {
  TestPki pki;
  const auto server = pki.issue("server", {.uris = {"spiffe://cluster.local/ns/shop/sa/server"}});
  const auto web = pki.issue("web", {.uris = {"spiffe://cluster.local/ns/shop/sa/web"}});
  const auto other = pki.issue("other", {.uris = {"spiffe://cluster.local/ns/other/sa/web"}});
  FakeUpstream app;
  Proxy proxy(config(app.port(), R"({ type: rbac, roles: { reader: [{ methods: [GET] }] },
        bindings: [{ role: reader, principals: [{ identity: "spiffe://cluster.local/ns/shop/sa/*" }] }] })",
                     "tls: { cert: " + server.cert + ", key: " + server.key + ", ca: " + pki.ca_path() + " }"));
  TlsClient shop(proxy.port(), {.ca = pki.ca_path(), .cert = web.cert, .key = web.key});
  EXPECT_EQ(shop.get("/"), 200);
  TlsClient outsider(proxy.port(), {.ca = pki.ca_path(), .cert = other.cert, .key = other.key});
  EXPECT_EQ(outsider.get("/"), 403);
}

}  // namespace
