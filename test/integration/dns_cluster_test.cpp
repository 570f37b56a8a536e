// Clusters of type strict_dns and logical_dns against a real name server the
// test runs on loopback (test/tools/dns/dns_server.py, dnslib): the answers
// become endpoints, changes reach the workers without a reload, a failing
// server keeps the last addresses, TTLs shorten the refresh, and the proxy is
// not ready before the first answer. Upstreams listen on 127.0.0.2 and
// 127.0.0.3 at one port, since a name resolves to addresses, not ports.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "support/net.hpp"
#include "support/process.hpp"

namespace {

using namespace testing_support;

const std::string kServer = OUTRIGGER_SOURCE_DIR "/test/tools/dns/dns_server.py";

bool have_dnslib() {
  static const bool ok = run_program({kPython, "-c", "import dnslib"}, 20s).exit_code == 0;
  return ok;
}

#define REQUIRE_DNSLIB()                                                                                   \
  do {                                                                                                     \
    if (!have_dnslib())                                                                                    \
      GTEST_SKIP() << "python3-dnslib is not importable by " << kPython << " (apt-get install python3-dnslib)"; \
  } while (0)

// dns_server.py with its zone in a file the test rewrites.
class NameServer {
 public:
  NameServer() {
    zone("{}");
    child_ = std::make_unique<Child>(std::vector<std::string>{kPython, kServer, dir_.file("port"), dir_.file("zone")},
                                     dir_, "dns");
    eventually([&] { return std::filesystem::exists(dir_.file("port")); }, 10s);
    std::ifstream in(dir_.file("port"));
    in >> port_;
    if (port_ == 0) ADD_FAILURE() << "dns_server.py did not start: " << child_->err();
  }
  // Replaces the whole zone (JSON), atomically.
  void zone(const std::string& json) {
    dir_.write("zone.tmp", json);
    std::filesystem::rename(dir_.file("zone.tmp"), dir_.file("zone"));
  }
  void answer(const std::string& name, const std::vector<std::string>& a, int ttl = 30,
              const std::string& mode = "ok") {
    std::string list;
    for (const auto& x : a) list += (list.empty() ? "\"" : ",\"") + x + "\"";
    zone("{\"" + name + "\": {\"a\": [" + list + "], \"ttl\": " + std::to_string(ttl) + ", \"mode\": \"" + mode +
         "\"}}");
  }
  int queries(const std::string& name) const {
    std::istringstream in(child_->out());
    std::string line;
    int n = 0;
    while (std::getline(in, line))
      if (line == "query " + name + " A") ++n;
    return n;
  }
  std::uint16_t port() const { return port_; }

 private:
  TempDir dir_;
  std::unique_ptr<Child> child_;
  std::uint16_t port_ = 0;
};

// Two upstreams, one port: each answers with its own address.
struct TwoUpstreams {
  static FakeUpstream::Handler named(std::string name) {
    return [name](FakeUpstream::Exchange& ex) { FakeUpstream::reply(ex, 200, name); };
  }
  FakeUpstream a{named("127.0.0.2"), "127.0.0.2"};
  FakeUpstream b{named("127.0.0.3"), "127.0.0.3", a.port()};
  std::uint16_t port() const { return a.port(); }
};

std::string config(const std::string& type, std::uint16_t dns_port, std::uint16_t port,
                   const std::string& extra = "dns_refresh_rate: 100ms") {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 2
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes:
      - cluster: svc
clusters:
  - name: svc
    type: {TYPE}
    endpoints: [svc.test:{PORT}]
    dns_resolvers: [127.0.0.1:{DNS}]
    dns_timeout: 600ms
    {EXTRA}
)",
              {{"TYPE", type}, {"DNS", std::to_string(dns_port)}, {"PORT", std::to_string(port)}, {"EXTRA", extra}});
}

// Which upstream answered each of n requests (a fresh connection each, so
// that both workers and every endpoint take part); "503" for the proxy's own.
std::map<std::string, int> spread(Proxy& proxy, int n) {
  std::map<std::string, int> seen;
  for (int i = 0; i < n; ++i) {
    auto r = http_get(proxy.port(), "/");
    if (!r) {
      ++seen["none"];
    } else if (r->result_int() == 200) {
      ++seen[r->body()];
    } else {
      ++seen[std::to_string(r->result_int())];
    }
  }
  return seen;
}

// The workers have the answer: ready says the lookups answered, and the new
// snapshot reaches each worker by a post of its own right after.
bool serves(Proxy& proxy, const std::string& address) {
  return eventually([&] { return spread(proxy, 4)[address] == 4; }, 5s);
}

std::string admin(Proxy& proxy, const std::string& path) {
  auto r = http_get(proxy.admin_port(), path);
  return r ? std::to_string(r->result_int()) + " " + r->body() : "no answer";
}

double dns_count(Proxy& proxy, const std::string& result) {
  const auto text = metrics(proxy);
  const std::string series = "outrigger_dns_resolutions_total{cluster=\"svc\",result=\"" + result + "\"} ";
  const auto at = text.find(series);
  return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size()));
}

TEST(DnsCluster, StrictDnsSpreadsOverEveryAddressAndFollowsChanges) {
  REQUIRE_DNSLIB();
  NameServer dns;
  TwoUpstreams up;
  dns.answer("svc.test", {"127.0.0.2", "127.0.0.3"});
  Proxy proxy(config("strict_dns", dns.port(), up.port()));
  ASSERT_TRUE(eventually([&] { return admin(proxy, "/ready") == "200 ready\n"; }, 5s)) << admin(proxy, "/ready");
  ASSERT_TRUE(eventually([&] { return spread(proxy, 2)["503"] == 0; }, 5s));
  auto seen = spread(proxy, 20);
  EXPECT_GT(seen["127.0.0.2"], 0) << ::testing::PrintToString(seen);
  EXPECT_GT(seen["127.0.0.3"], 0) << ::testing::PrintToString(seen);
  EXPECT_EQ(seen["127.0.0.2"] + seen["127.0.0.3"], 20);
  const auto clusters = admin(proxy, "/clusters");
  EXPECT_NE(clusters.find("127.0.0.2:" + std::to_string(up.port())), std::string::npos) << clusters;

  // One address goes away: the workers follow without a reload.
  dns.answer("svc.test", {"127.0.0.3"});
  EXPECT_TRUE(eventually([&] { return spread(proxy, 6)["127.0.0.3"] == 6; }, 5s));
  seen = spread(proxy, 10);
  EXPECT_EQ(seen["127.0.0.3"], 10) << ::testing::PrintToString(seen);
  EXPECT_GT(dns_count(proxy, "success"), 1);
  EXPECT_EQ(dns_count(proxy, "failure"), 0);
  EXPECT_TRUE(has(metrics(proxy), "outrigger_config_reloads_total{result=\"success\"} 0"));
}

TEST(DnsCluster, AFailingNameServerKeepsTheLastAddressesAndNxdomainEmptiesTheCluster) {
  REQUIRE_DNSLIB();
  NameServer dns;
  TwoUpstreams up;
  dns.answer("svc.test", {"127.0.0.2"});
  Proxy proxy(config("strict_dns", dns.port(), up.port()));
  ASSERT_TRUE(eventually([&] { return admin(proxy, "/ready") == "200 ready\n"; }, 5s));
  ASSERT_TRUE(serves(proxy, "127.0.0.2"));

  // SERVFAIL, then no answer at all: both are failures, and the last good
  // address keeps serving.
  dns.answer("svc.test", {}, 30, "servfail");
  ASSERT_TRUE(eventually([&] { return dns_count(proxy, "failure") >= 2; }, 5s)) << metrics(proxy);
  EXPECT_EQ(spread(proxy, 4)["127.0.0.2"], 4);
  dns.answer("svc.test", {}, 30, "drop");
  const double failures = dns_count(proxy, "failure");
  ASSERT_TRUE(eventually([&] { return dns_count(proxy, "failure") > failures; }, 5s));
  EXPECT_EQ(spread(proxy, 4)["127.0.0.2"], 4);

  // The name is gone (NXDOMAIN): an answer, so the cluster has no endpoint
  // left, as in Envoy; the proxy says so with its 503.
  dns.zone("{}");
  ASSERT_TRUE(eventually([&] { return dns_count(proxy, "empty") >= 1; }, 5s));
  ASSERT_TRUE(eventually([&] { return spread(proxy, 2)["503"] == 2; }, 5s));
  auto r = http_get(proxy.port(), "/");
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["x-outrigger-error"], "no_healthy_upstream");

  // And it comes back.
  dns.answer("svc.test", {"127.0.0.3"});
  EXPECT_TRUE(eventually([&] { return spread(proxy, 2)["127.0.0.3"] == 2; }, 5s));
}

TEST(DnsCluster, AShortTtlShortensTheRefresh) {
  REQUIRE_DNSLIB();
  NameServer dns;
  TwoUpstreams up;
  dns.answer("svc.test", {"127.0.0.2"}, 1);
  // Every 60 s by the rate, every second by the TTL.
  Proxy proxy(config("strict_dns", dns.port(), up.port(), "dns_refresh_rate: 60s"));
  ASSERT_TRUE(eventually([&] { return dns.queries("svc.test") >= 3; }, 5s)) << dns.queries("svc.test");
}

TEST(DnsCluster, LogicalDnsKeepsOneAddressWhileTheAnswerHoldsIt) {
  REQUIRE_DNSLIB();
  NameServer dns;
  TwoUpstreams up;
  dns.answer("svc.test", {"127.0.0.2", "127.0.0.3"});
  Proxy proxy(config("logical_dns", dns.port(), up.port()));
  ASSERT_TRUE(eventually([&] { return admin(proxy, "/ready") == "200 ready\n"; }, 5s));
  ASSERT_TRUE(serves(proxy, "127.0.0.2"));
  EXPECT_EQ(spread(proxy, 10)["127.0.0.2"], 10);
  // DNS round robin turns the answer around: the address stays.
  dns.answer("svc.test", {"127.0.0.3", "127.0.0.2"});
  const int asked = dns.queries("svc.test");
  ASSERT_TRUE(eventually([&] { return dns.queries("svc.test") >= asked + 2; }, 5s));
  EXPECT_EQ(spread(proxy, 10)["127.0.0.2"], 10);
  // Its address is gone from the answer: new connections go to the new one.
  dns.answer("svc.test", {"127.0.0.3"});
  EXPECT_TRUE(eventually([&] { return spread(proxy, 4)["127.0.0.3"] == 4; }, 5s));
  // One endpoint, named as configured.
  const auto clusters = admin(proxy, "/clusters");
  EXPECT_NE(clusters.find("svc.test:" + std::to_string(up.port())), std::string::npos) << clusters;
}

TEST(DnsCluster, NotReadyUntilTheFirstAnswer) {
  REQUIRE_DNSLIB();
  NameServer dns;
  TwoUpstreams up;
  dns.answer("svc.test", {"127.0.0.2"}, 30, "drop");
  Proxy proxy(config("strict_dns", dns.port(), up.port(), "dns_refresh_rate: 5s\n    dns_timeout: 2s"));
  ASSERT_TRUE(eventually([&] { return dns.queries("svc.test") >= 1; }, 5s));
  EXPECT_EQ(admin(proxy, "/ready"), "503 not ready\n");
  // The lookup fails at its timeout: the proxy is ready, the cluster empty
  // (a 503 per request) until the next lookup finds the name.
  ASSERT_TRUE(eventually([&] { return admin(proxy, "/ready") == "200 ready\n"; }, 5s));
  EXPECT_EQ(spread(proxy, 1)["503"], 1);
  EXPECT_EQ(dns_count(proxy, "failure"), 1);
}

TEST(DnsCluster, AReloadKeepsWhatWasResolved) {
  REQUIRE_DNSLIB();
  NameServer dns;
  TwoUpstreams up;
  dns.answer("svc.test", {"127.0.0.2"});
  const auto yaml = config("strict_dns", dns.port(), up.port(), "dns_refresh_rate: 30s");
  Proxy proxy(yaml);
  ASSERT_TRUE(eventually([&] { return admin(proxy, "/ready") == "200 ready\n"; }, 5s));
  ASSERT_TRUE(serves(proxy, "127.0.0.2"));
  // A reload with the same cluster: no new lookup is needed to serve it.
  auto errors = proxy.server().reload(parse_config(yaml + "\n# again\n"));
  ASSERT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(spread(proxy, 4)["127.0.0.2"], 4);
  EXPECT_EQ(dns.queries("svc.test"), 1);
}

}  // namespace
