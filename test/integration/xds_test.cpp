// The xDS client against a real control plane: test/tools/xds/control_plane.py
// (Python grpcio, checked against Google's grpc-js-xds by
// XdsControlPlane.CrossCheckWithGrpcJsXds) serves scripted snapshots of
// Envoy resources over ADS. Clusters and endpoints come from it, move under
// load without a failed request, a bad resource is NACKed with its field named
// while the old config serves, and a broken stream keeps the config and comes
// back.
//
// Needs Debian's /usr/bin/python3 with python3-grpcio and python3-protobuf,
// protoc and grpc_python_plugin; without them every test skips and says so.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <atomic>
#include <sstream>
#include <thread>

#include "support/net.hpp"
#include "support/process.hpp"

namespace {

using namespace testing_support;
namespace json = boost::json;

const std::string kControlPlane = OUTRIGGER_SOURCE_DIR "/test/tools/xds/control_plane.py";
constexpr std::string_view kCluster = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
constexpr std::string_view kAssignment = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

bool have_tools() {
  static const bool ok =
      run_program({kPython, "-c", "import grpc, google.protobuf"}, 20s).exit_code == 0 &&
      have_program("protoc") && have_program("/usr/bin/grpc_python_plugin");
  return ok;
}

#define REQUIRE_TOOLS()                                                                                  \
  do {                                                                                                   \
    if (!have_tools())                                                                                   \
      GTEST_SKIP() << "the xDS tests need " << kPython << " with python3-grpcio and python3-protobuf, "  \
                   << "protoc and grpc_python_plugin (apt-get install python3-grpcio python3-protobuf " \
                   << "protobuf-compiler protobuf-compiler-grpc)";                                       \
  } while (0)

// control_plane.py on loopback, driven through its admin API.
class ControlPlane {
 public:
  ControlPlane() : child_({kPython, kControlPlane, "--ads-port", "0", "--admin-port", "0"}, dir_, "control_plane") {
    if (!child_.wait_for_output("LISTENING", 60s)) {  // the first run generates the Python stubs
      ADD_FAILURE() << "control_plane.py did not start: " << child_.out() << child_.err();
      return;
    }
    std::istringstream in(child_.out());
    std::string word;
    while (in >> word) {
      if (word.rfind("ads=", 0) == 0) ads_ = static_cast<std::uint16_t>(std::stoi(word.substr(4)));
      if (word.rfind("admin=", 0) == 0) admin_ = static_cast<std::uint16_t>(std::stoi(word.substr(6)));
    }
  }
  std::uint16_t ads_port() const { return ads_; }

  // Replaces the snapshot: `resources` is a JSON array of resources with "@type".
  void snapshot(const std::string& version, const std::string& resources) {
    const auto body = R"({"version": ")" + version + R"(", "resources": )" + resources + "}";
    auto s = Socket::connect(admin_);
    ASSERT_TRUE(s.send(request_text("POST", "/snapshot", {{"Content-Type", "application/json"}}, body)));
    auto res = s.read_response(10s);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->result_int(), 200) << res->body();
  }
  void break_streams(int refuse_seconds) {
    auto s = Socket::connect(admin_);
    const auto body = R"({"refuse_seconds": )" + std::to_string(refuse_seconds) + "}";
    ASSERT_TRUE(s.send(request_text("POST", "/break", {{"Content-Type", "application/json"}}, body)));
    auto res = s.read_response(10s);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->result_int(), 200) << res->body();
  }
  // Every DiscoveryRequest it got, in order.
  std::vector<json::object> requests() const {
    std::vector<json::object> out;
    auto res = http_get(admin_, "/requests");
    if (!res) return out;
    boost::system::error_code ec;
    auto v = json::parse(res->body(), ec);
    if (ec || !v.is_array()) return out;
    for (const auto& r : v.as_array())
      if (r.is_object()) out.push_back(r.as_object());
    return out;
  }
  // The last request of `type` of the given kind ("ack", "nack", ...), if any.
  std::optional<json::object> last(std::string_view type, std::string_view kind) const {
    std::optional<json::object> found;
    for (auto& r : requests())
      if (r.at("type_url").as_string() == type && r.at("kind").as_string() == kind) found = r;
    return found;
  }
  std::string log() const { return child_.out() + child_.err(); }

 private:
  TempDir dir_;
  Child child_;
  std::uint16_t ads_ = 0, admin_ = 0;
};

std::string str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// An EDS cluster `name`, from ADS.
std::string eds_cluster(const std::string& name, const std::string& extra = "") {
  return R"({"@type": ")" + std::string(kCluster) + R"(", "name": ")" + name +
         R"(", "type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}}, "connect_timeout": "1s")" + extra +
         "}";
}

// Its endpoints: 127.0.0.1 at each port.
std::string assignment(const std::string& name, const std::vector<std::uint16_t>& ports) {
  std::string eps;
  for (auto p : ports) {
    if (!eps.empty()) eps += ",";
    eps += R"({"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": )" +
           std::to_string(p) + "}}}}";
  }
  return R"({"@type": ")" + std::string(kAssignment) + R"(", "cluster_name": ")" + name +
         R"(", "endpoints": [{"lb_endpoints": [)" + eps + "]}]}";
}

// A proxy whose route `/` goes to cluster `backend`, which only the control plane has.
std::string proxy_config(std::uint16_t ads) {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 2
log_level: info
xds:
  cluster: xds
  node: { id: test-sidecar, cluster: test, metadata: { team: mesh } }
  initial_fetch_timeout: 30s
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes: [{ cluster: backend, timeout: 5s }]
clusters:
  - name: xds
    protocol: http2
    endpoints: [127.0.0.1:{ADS}]
)",
              {{"ADS", std::to_string(ads)}});
}

// An upstream that answers with its own name.
FakeUpstream named(const std::string& name) {
  return FakeUpstream([name](FakeUpstream::Exchange& ex) { FakeUpstream::reply(ex, 200, name); });
}

std::string body_of(std::uint16_t port) {
  std::vector<std::string> bodies;
  const auto statuses = send_gets(port, 1, &bodies);
  return statuses.size() == 1 && statuses[0] == 200 ? bodies[0] : "status " + std::to_string(statuses.empty() ? 0 : statuses[0]);
}

bool ready(Proxy& proxy) {
  auto res = http_get(proxy.admin_port(), "/ready");
  return res && res->result_int() == 200;
}

TEST(Xds, ClustersAndEndpointsFromTheControlPlaneServe) {
  REQUIRE_TOOLS();
  auto a = named("a");
  ControlPlane cp;
  ASSERT_NE(cp.ads_port(), 0) << cp.log();
  cp.snapshot("v1", "[" + eds_cluster("backend") + "," + assignment("backend", {a.port()}) + "]");
  Proxy proxy(proxy_config(cp.ads_port()));
  ASSERT_TRUE(eventually([&] { return ready(proxy); }, 20s)) << cp.log();
  EXPECT_EQ(body_of(proxy.port()), "a");
  // The protocol as it should go: the node on the first request, CDS wildcard,
  // EDS by name, both ACKed with the version and nonce they got.
  std::optional<json::object> cds_ack, eds_ack;
  ASSERT_TRUE(eventually([&] {
    cds_ack = cp.last(kCluster, "ack");
    eds_ack = cp.last(kAssignment, "ack");
    return cds_ack && eds_ack;
  }, 10s)) << cp.log();
  EXPECT_EQ(str(*cds_ack, "version_info"), "v1");
  EXPECT_EQ(str(*eds_ack, "version_info"), "v1");
  EXPECT_EQ(str(*eds_ack, "node_id"), "test-sidecar");
  EXPECT_EQ(json::serialize(eds_ack->at("resource_names")), R"(["backend"])");
  EXPECT_TRUE(cds_ack->at("resource_names").as_array().empty());
  const auto text = metrics(proxy);
  EXPECT_TRUE(has(text, "\noutrigger_xds_connected 1\n")) << text;
  EXPECT_TRUE(has(text, "outrigger_xds_updates_total{type=\"clusters\"} 1")) << text;
  EXPECT_TRUE(has(text, "outrigger_xds_updates_total{type=\"endpoints\"} 1")) << text;
  EXPECT_TRUE(has(text, "outrigger_xds_rejections_total{type=\"clusters\"} 0")) << text;
  // Where each piece came from, with the versions in force.
  auto dump = http_get(proxy.admin_port(), "/config_dump");
  ASSERT_TRUE(dump);
  const auto d = json::parse(dump->body()).as_object();
  EXPECT_EQ(str(d.at("xds").as_object(), "clusters_version"), "v1");
  EXPECT_EQ(str(d.at("xds").as_object(), "endpoints_version"), "v1");
  for (const auto& c : d.at("clusters").as_array()) {
    const auto& o = c.as_object();
    EXPECT_EQ(str(o, "source"), str(o, "name") == "xds" ? "file" : "xds") << json::serialize(o);
  }
}

TEST(Xds, EndpointsMoveUnderLoadWithoutAFailedRequest) {
  REQUIRE_TOOLS();
  auto a = named("a"), b = named("b");
  ControlPlane cp;
  ASSERT_NE(cp.ads_port(), 0) << cp.log();
  cp.snapshot("v1", "[" + eds_cluster("backend") + "," + assignment("backend", {a.port()}) + "]");
  Proxy proxy(proxy_config(cp.ads_port()));
  ASSERT_TRUE(eventually([&] { return ready(proxy); }, 20s)) << cp.log();

  // Clients on keep-alive connections all along, while the endpoints move
  // a -> a+b -> b -> a.
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0}, from_b{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&] {
      while (!stop) {
        std::vector<std::string> bodies;
        const auto statuses = send_gets(proxy.port(), 20, &bodies);
        for (std::size_t k = 0; k < statuses.size(); ++k) {
          if (statuses[k] == 200) {
            ++ok;
            if (bodies[k] == "b") ++from_b;
          } else {
            ++failed;
          }
        }
        if (statuses.size() != 20) ++failed;  // the connection broke
      }
    });
  }
  auto step = [&](const std::string& version, const std::vector<std::uint16_t>& ports) {
    cp.snapshot(version, "[" + eds_cluster("backend") + "," + assignment("backend", ports) + "]");
    EXPECT_TRUE(eventually([&] {
      const auto ack = cp.last(kAssignment, "ack");
      return ack && str(*ack, "version_info") == version;
    }, 10s)) << cp.log();
    const int before = ok;
    EXPECT_TRUE(eventually([&] { return ok >= before + 200; }, 10s));  // traffic goes on meanwhile
  };
  step("v2", {a.port(), b.port()});
  step("v3", {b.port()});
  const int b_before = from_b;
  EXPECT_TRUE(eventually([&] { return from_b > b_before + 50; }, 10s));
  step("v4", {a.port()});
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed, 0) << ok << " answered 200";
  EXPECT_GE(ok, 600);  // at least 200 answered during each step
  // After v4, only a answers.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(body_of(proxy.port()), "a");
}

TEST(Xds, ABadResourceIsNackedWithItsFieldAndTheOldConfigServes) {
  REQUIRE_TOOLS();
  auto a = named("a");
  ControlPlane cp;
  ASSERT_NE(cp.ads_port(), 0) << cp.log();
  cp.snapshot("v1", "[" + eds_cluster("backend") + "," + assignment("backend", {a.port()}) + "]");
  Proxy proxy(proxy_config(cp.ads_port()));
  ASSERT_TRUE(eventually([&] { return ready(proxy); }, 20s)) << cp.log();
  ASSERT_EQ(body_of(proxy.port()), "a");

  // v2: the cluster asks for a load balancer Outrigger does not have.
  cp.snapshot("v2", "[" + eds_cluster("backend", R"(, "lb_policy": "RING_HASH")") + "," +
                        assignment("backend", {a.port()}) + "]");
  std::optional<json::object> nack;
  ASSERT_TRUE(eventually([&] { return (nack = cp.last(kCluster, "nack")).has_value(); }, 10s)) << cp.log();
  EXPECT_EQ(str(*nack, "version_info"), "v1");  // what it still holds
  const auto& detail = nack->at("error_detail").as_object();
  EXPECT_EQ(detail.at("code").as_int64(), 3);  // INVALID_ARGUMENT
  EXPECT_NE(str(detail, "message").find("Cluster 'backend': lb_policy RING_HASH"), std::string::npos)
      << json::serialize(detail);
  EXPECT_EQ(body_of(proxy.port()), "a");
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), "outrigger_xds_rejections_total{type=\"clusters\"} 1"); }));

  // v3: a cluster named like one of the file's (the control plane's own).
  cp.snapshot("v3", "[" + eds_cluster("backend") + "," + eds_cluster("xds") + "," +
                        assignment("backend", {a.port()}) + "]");
  ASSERT_TRUE(eventually([&] {
    const auto n = cp.last(kCluster, "nack");
    return n && str(n->at("error_detail").as_object(), "message").find("Cluster 'xds': the config file has") !=
                    std::string::npos;
  }, 10s)) << cp.log();
  EXPECT_EQ(body_of(proxy.port()), "a");

  // v4: good again, and taken.
  cp.snapshot("v4", "[" + eds_cluster("backend") + "," + assignment("backend", {a.port()}) + "]");
  EXPECT_TRUE(eventually([&] {
    const auto ack = cp.last(kCluster, "ack");
    return ack && str(*ack, "version_info") == "v4";
  }, 10s)) << cp.log();
}

TEST(Xds, ABrokenStreamKeepsTheConfigAndComesBack) {
  REQUIRE_TOOLS();
  auto a = named("a"), b = named("b");
  ControlPlane cp;
  ASSERT_NE(cp.ads_port(), 0) << cp.log();
  cp.snapshot("v1", "[" + eds_cluster("backend") + "," + assignment("backend", {a.port()}) + "]");
  Proxy proxy(proxy_config(cp.ads_port()));
  ASSERT_TRUE(eventually([&] { return ready(proxy); }, 20s)) << cp.log();

  cp.break_streams(2);  // and refuses new streams for 2 s
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), "\noutrigger_xds_connected 0\n"); }, 5s));
  // The config stays while the control plane is away.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(body_of(proxy.port()), "a");
  EXPECT_TRUE(ready(proxy));
  // Back with backoff: a second stream, which says what it holds (v1).
  EXPECT_TRUE(eventually([&] { return has(metrics(proxy), "\noutrigger_xds_connected 1\n"); }, 20s)) << cp.log();
  // One stream per attempt: the refused ones count too.
  const auto text = metrics(proxy);
  const std::string series = "\noutrigger_xds_streams_total ";
  const auto at = text.find(series);
  ASSERT_NE(at, std::string::npos) << text;
  EXPECT_GE(std::stoi(text.substr(at + series.size())), 2) << text;
  bool resumed = false;
  for (const auto& r : cp.requests())
    if (r.at("stream").as_int64() > 1 && str(r, "type_url") == kCluster && str(r, "kind") == "initial")
      resumed = str(r, "version_info") == "v1";
  EXPECT_TRUE(resumed) << cp.log();
  // And it follows the control plane again.
  cp.snapshot("v2", "[" + eds_cluster("backend") + "," + assignment("backend", {b.port()}) + "]");
  EXPECT_TRUE(eventually([&] { return body_of(proxy.port()) == "b"; }, 10s));
}

TEST(Xds, ARouteToAClusterNotSentYetAnswers503UntilItComes) {
  REQUIRE_TOOLS();
  auto a = named("a");
  ControlPlane cp;
  ASSERT_NE(cp.ads_port(), 0) << cp.log();
  cp.snapshot("v1", "[]");
  Proxy proxy(proxy_config(cp.ads_port()));
  ASSERT_TRUE(eventually([&] { return ready(proxy); }, 20s)) << cp.log();
  EXPECT_EQ(body_of(proxy.port()), "status 503");
  cp.snapshot("v2", "[" + eds_cluster("backend") + "," + assignment("backend", {a.port()}) + "]");
  EXPECT_TRUE(eventually([&] { return body_of(proxy.port()) == "a"; }, 10s)) << cp.log();
  // Removed again by the control plane: 503 again, the proxy unharmed.
  cp.snapshot("v3", "[]");
  EXPECT_TRUE(eventually([&] { return body_of(proxy.port()) == "status 503"; }, 10s)) << cp.log();
}

}  // namespace
