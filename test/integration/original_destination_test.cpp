// Original-destination listeners as a sidecar runs them: iptables REDIRECT
// sends a client's TCP connection to the proxy, which reads the address the
// client meant (SO_ORIGINAL_DST) and routes by it. HTTP to an endpoint of a
// cluster goes through that cluster as HTTP; a destination in no cluster is
// passed through as TCP to itself (or refused, with `passthrough: deny`);
// server-speaks-first protocols get their greeting quickly, on an opaque port
// at once and elsewhere after detect_timeout. Each case checks what the client
// saw and that it went through the proxy (access log, metrics).
//
// Everything (the outrigger binary, the peers of test/tools/netns/peer.py, the
// iptables rules) runs in a network namespace of the test's own, so fixed
// ports and documentation addresses (198.51.100.7, 198.51.100.8, and
// 2001:db8::7, 2001:db8::8 where the namespace has IPv6) are fine.
// Needs root, `ip` and `iptables`; otherwise every test skips and says why.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/net.hpp"
#include "support/process.hpp"

namespace testing_support {
// For failure messages (found by argument-dependent lookup).
std::ostream& operator<<(std::ostream& os, const Run& r) {
  return os << "exit " << r.exit_code << ", stdout: " << r.out << ", stderr: " << r.err;
}
}  // namespace testing_support

namespace {

using namespace testing_support;
// `Run` alone, inside a fixture, names testing::Test::Run().
using Result = testing_support::Run;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

const std::string kPeer = OUTRIGGER_SOURCE_DIR "/test/tools/netns/peer.py";
constexpr int kAdminPort = 15000;
constexpr int kListenerPort = 15001;
constexpr int kMark = 66;

std::string str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

double num(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (!v) return -1;
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  if (v->is_uint64()) return static_cast<double>(v->as_uint64());
  if (v->is_double()) return v->as_double();
  return -1;
}

// The JSON objects among `text`'s lines.
std::vector<json::object> json_lines(const std::string& text) {
  std::vector<json::object> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] != '{') continue;
    boost::system::error_code ec;
    auto v = json::parse(line, ec);
    if (!ec && v.is_object()) out.push_back(v.as_object());
  }
  return out;
}

// The value after "NAME " on one of `text`'s lines ("elapsed_ms 12" -> "12").
std::optional<std::string> field(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(name + " ", 0) == 0) return line.substr(name.size() + 1);
  return std::nullopt;
}

int elapsed_ms(const Run& r) {
  const auto v = field(r.out, "elapsed_ms");
  return v ? std::stoi(*v) : -1;
}

// The value of one exact series (`name{labels}`) in Prometheus text; -1 when absent.
double series_value(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return -1;
}

std::string detections(const std::string& result) {
  return R"(outrigger_protocol_detections_total{direction="outbound",listener="outbound",result=")" + result + "\"}";
}
std::string passthrough(const std::string& decision) {
  return R"(outrigger_passthrough_connections_total{direction="outbound",listener="outbound",decision=")" + decision +
         "\"}";
}
const std::string kTcpTunnels = R"(outrigger_tunnels_total{direction="outbound",listener="outbound",kind="tcp"})";

bool succeeded(const Run& r) { return r.exit_code == 0; }

// A namespace of its own for each test, with the proxy in it. Subclasses say
// how destinations in no cluster are treated.
class OriginalDestination : public ::testing::Test {
 protected:
  virtual std::string passthrough_policy() const { return "allow"; }

  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces and iptables)";
    for (const char* program : {"ip", "iptables"})
      if (!have_program(program))
        GTEST_SKIP() << "`" << program << "` is not installed (apt-get install iproute2 iptables)";
    if (!have_program(kPython)) GTEST_SKIP() << kPython << " is not installed";

    static std::atomic<int> counter{0};
    ns_ = "outrigger-od-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
    const auto add = run_program({"ip", "netns", "add", ns_});
    if (add.exit_code != 0) {
      ns_.clear();
      GTEST_SKIP() << "`ip netns add` failed, network namespaces are not available: " << add;
    }
    ASSERT_TRUE(succeeded(ip({"link", "set", "lo", "up"})));
    // The documentation addresses on a dummy interface, or on lo where the
    // kernel has no dummy driver: either way local to the namespace.
    std::string dev = "od0";
    if (!succeeded(ip({"link", "add", dev, "type", "dummy"})) || !succeeded(ip({"link", "set", dev, "up"}))) dev = "lo";
    for (const char* address : {"198.51.100.7/32", "198.51.100.8/32"}) {
      const auto r = ip({"addr", "add", address, "dev", dev});
      ASSERT_TRUE(succeeded(r)) << r;
    }
    // The proxy's own upstream connections carry the mark and are left
    // alone; every other TCP connection to 198.51.100.0/24 goes to it.
    for (const auto& rule : std::vector<std::vector<std::string>>{
             {"-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-m", "mark", "--mark", std::to_string(kMark), "-j", "RETURN"},
             {"-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "198.51.100.0/24", "-j", "REDIRECT", "--to-ports",
              std::to_string(kListenerPort)}}) {
      std::vector<std::string> argv{"iptables"};
      argv.insert(argv.end(), rule.begin(), rule.end());
      const auto r = in_ns(argv);
      if (!succeeded(r)) GTEST_SKIP() << "iptables cannot add a nat REDIRECT rule here: " << r;
    }
    // The same for IPv6 where the namespace has it (ip6tables, an IPv6 lo).
    ipv6_ = have_program("ip6tables");
    for (const char* address : {"2001:db8::7/128", "2001:db8::8/128"})
      if (ipv6_) ipv6_ = succeeded(ip({"addr", "add", address, "dev", dev, "nodad"}));
    for (const auto& rule : std::vector<std::vector<std::string>>{
             {"-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-m", "mark", "--mark", std::to_string(kMark), "-j", "RETURN"},
             {"-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "2001:db8::/64", "-j", "REDIRECT", "--to-ports",
              std::to_string(kListenerPort)}}) {
      std::vector<std::string> argv{"ip6tables"};
      argv.insert(argv.end(), rule.begin(), rule.end());
      if (ipv6_) ipv6_ = succeeded(in_ns(argv));
    }

    const auto listener6 = fill(R"(  - name: outbound6
    address: "[::1]:{LISTENER}"
    direction: outbound
    original_destination: true
    passthrough: {PASSTHROUGH}
    detect_timeout: 100ms
)",
                                {{"LISTENER", std::to_string(kListenerPort)}, {"PASSTHROUGH", passthrough_policy()}});
    const auto config = dir_.write("outrigger.yaml", fill(R"(
workers: 1
socket_mark: {MARK}
admin: { address: 127.0.0.1:{ADMIN} }
access_log: { path: stdout, format: json }
listeners:
  - name: outbound
    address: 127.0.0.1:{LISTENER}
    direction: outbound
    original_destination: true
    passthrough: {PASSTHROUGH}
    detect_timeout: 100ms
{LISTENER6}clusters:
  - name: known
    endpoints: [198.51.100.7:80]
  - name: mysql
    endpoints: [198.51.100.8:3306]
  - name: greeter
    endpoints: [198.51.100.8:7000]
  - name: known6
    endpoints: ["[2001:db8::7]:80"]
)",
                                                          {{"MARK", std::to_string(kMark)},
                                                           {"ADMIN", std::to_string(kAdminPort)},
                                                           {"LISTENER", std::to_string(kListenerPort)},
                                                           {"PASSTHROUGH", passthrough_policy()},
                                                           {"LISTENER6", ipv6_ ? listener6 : ""}}));
    proxy_ = std::make_unique<Child>(
        std::vector<std::string>{"ip", "netns", "exec", ns_, OUTRIGGER_BINARY, "run", "-c", config}, dir_, "outrigger");
    const auto ready = peer({"wait-ready", std::to_string(kAdminPort)}, 15s);
    ASSERT_TRUE(succeeded(ready)) << ready << "\nproxy stderr: " << proxy_->err();
  }

  void TearDown() override {
    servers_.clear();  // killed before their namespace goes
    proxy_.reset();
    if (!ns_.empty()) {
      const auto r = run_program({"ip", "netns", "del", ns_});
      EXPECT_EQ(r.exit_code, 0) << "could not remove namespace " << ns_ << ": " << r;
    }
  }

  Result ip(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"ip", "-n", ns_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(argv);
  }

  Result in_ns(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 10s) {
    std::vector<std::string> argv{"ip", "netns", "exec", ns_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(argv, timeout);
  }

  // peer.py in the namespace, to its end.
  Result peer(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 10s) {
    std::vector<std::string> argv{kPython, kPeer};
    argv.insert(argv.end(), args.begin(), args.end());
    return in_ns(argv, timeout);
  }

  // A peer.py server in the namespace, once it listens.
  const Child& server(const std::string& kind, const std::string& host, int port) {
    const std::string name = kind + "-" + host + "-" + std::to_string(port);
    auto& child = servers_.emplace_back(
        std::make_unique<Child>(std::vector<std::string>{"ip", "netns", "exec", ns_, kPython, kPeer, "--lifetime", "60",
                                                         kind, host, std::to_string(port)},
                                dir_, name));
    EXPECT_TRUE(child->wait_for_output("listening\n", 10s))
        << name << " did not start: " << child->out() << child->err();
    return *child;
  }

  std::string metrics_text() {
    const auto r = peer({"metrics", std::to_string(kAdminPort)});
    return r.exit_code == 0 ? r.out : std::string();
  }

  // Waits until every series has its value; false (and a failure naming
  // what differed) at the deadline.
  bool metrics_reach(const std::vector<std::pair<std::string, double>>& expected,
                     std::chrono::milliseconds timeout = 5s) {
    const auto deadline = Clock::now() + timeout;
    std::string text;
    for (;;) {
      text = metrics_text();
      bool all = true;
      for (const auto& [series, value] : expected) all = all && series_value(text, series) == value;
      if (all) return true;
      if (Clock::now() >= deadline) break;
      std::this_thread::sleep_for(20ms);
    }
    for (const auto& [series, value] : expected) EXPECT_EQ(series_value(text, series), value) << series;
    return false;
  }

  // The access-log lines (the proxy's stdout) for which `match` holds, once
  // there are at least `n` of them (or at the deadline).
  std::vector<json::object> access_log(const std::function<bool(const json::object&)>& match, std::size_t n = 1,
                                       std::chrono::milliseconds timeout = 5s) {
    const auto deadline = Clock::now() + timeout;
    std::vector<json::object> found;
    for (;;) {
      found.clear();
      for (auto& line : json_lines(proxy_->out()))
        if (match(line)) found.push_back(std::move(line));
      if (found.size() >= n || Clock::now() >= deadline) return found;
      std::this_thread::sleep_for(10ms);
    }
  }

  static std::function<bool(const json::object&)> to_upstream(const std::string& host) {
    return [host](const json::object& o) { return str(o, "upstream_host") == host; };
  }

  std::string proxy_output() const { return "proxy stdout:\n" + proxy_->out() + "\nproxy stderr:\n" + proxy_->err(); }

  TempDir dir_;
  std::string ns_;
  bool ipv6_ = false;  // listener outbound6 on [::1], and 2001:db8::7 and ::8
  std::unique_ptr<Child> proxy_;
  std::vector<std::unique_ptr<Child>> servers_;
};

class OriginalDestinationDenied : public OriginalDestination {
 protected:
  std::string passthrough_policy() const override { return "deny"; }
};

TEST_F(OriginalDestination, HttpToAClusterEndpointIsProxiedAsHttpThroughThatCluster) {
  server("http-server", "198.51.100.7", 80);
  const auto r = peer({"client-http", "198.51.100.7", "80"});
  ASSERT_TRUE(succeeded(r)) << r << proxy_output();
  EXPECT_EQ(field(r.out, "status"), "200") << r;
  // The upstream echoes the request's headers: the proxy added its own.
  const auto request_id = field(r.out, "x-request-id:");
  ASSERT_TRUE(request_id && !request_id->empty()) << "the upstream saw no x-request-id: " << r.out;
  EXPECT_TRUE(field(r.out, "x-forwarded-for:")) << "the upstream saw no x-forwarded-for: " << r.out;

  const auto lines = access_log(to_upstream("198.51.100.7:80"));
  ASSERT_EQ(lines.size(), 1u) << proxy_output();
  EXPECT_EQ(str(lines[0], "protocol"), "HTTP/1.1");
  EXPECT_EQ(str(lines[0], "route"), "outbound/destination");
  EXPECT_EQ(str(lines[0], "cluster"), "known");
  EXPECT_EQ(str(lines[0], "listener"), "outbound");
  EXPECT_EQ(num(lines[0], "response_code"), 200);
  EXPECT_EQ(str(lines[0], "request_id"), *request_id) << "the access log names another request than the upstream saw";
  metrics_reach({{detections("http1"), 1}, {detections("tcp"), 0}, {passthrough("allowed"), 0}});
}

TEST_F(OriginalDestination, TcpToADestinationInNoClusterIsPassedThroughToItHalfCloseIncluded) {
  const auto& echo = server("echo-server", "198.51.100.8", 9000);
  // The client shuts down writing first and still reads the whole echo to EOF.
  const std::string data = "through-the-sidecar-and-back";
  const auto r = peer({"client-echo", "198.51.100.8", "9000", data});
  ASSERT_TRUE(succeeded(r)) << r << proxy_output();
  EXPECT_EQ(field(r.out, "echo"), data);
  EXPECT_NE(echo.out().find("accepted "), std::string::npos) << "the destination itself saw no connection";

  const auto lines = access_log(to_upstream("198.51.100.8:9000"));
  ASSERT_EQ(lines.size(), 1u) << proxy_output();
  EXPECT_EQ(str(lines[0], "protocol"), "TCP");
  EXPECT_EQ(str(lines[0], "cluster"), "passthrough");
  EXPECT_EQ(str(lines[0], "error"), "");
  EXPECT_EQ(num(lines[0], "bytes_received"), static_cast<double>(data.size()));
  EXPECT_EQ(num(lines[0], "bytes_sent"), static_cast<double>(data.size()));
  // A passthrough destination is not inspected: nothing detected.
  metrics_reach({{passthrough("allowed"), 1},
                 {passthrough("denied"), 0},
                 {kTcpTunnels, 1},
                 {detections("tcp"), 0},
                 {detections("timeout"), 0}});
}

TEST_F(OriginalDestination, ServerFirstProtocolsGetTheirGreetingOnOpaqueAndOtherPorts) {
  server("greeting-server", "198.51.100.8", 3306);  // cluster mysql; 3306 is opaque
  server("greeting-server", "198.51.100.8", 7000);  // cluster greeter; detection waits detect_timeout
  server("greeting-server", "198.51.100.8", 7001);  // no cluster: passthrough

  // An opaque port is not inspected: the greeting comes at once.
  const auto opaque = peer({"client-greeting", "198.51.100.8", "3306"});
  ASSERT_TRUE(succeeded(opaque)) << opaque << proxy_output();
  EXPECT_GE(elapsed_ms(opaque), 0) << opaque;
  EXPECT_LT(elapsed_ms(opaque), 500) << opaque;
  EXPECT_TRUE(metrics_reach({{detections("opaque_port"), 1}, {detections("timeout"), 0}}));

  // Elsewhere the client's silence for detect_timeout (100 ms) makes it TCP.
  const auto waited = peer({"client-greeting", "198.51.100.8", "7000"});
  ASSERT_TRUE(succeeded(waited)) << waited << proxy_output();
  EXPECT_GE(elapsed_ms(waited), 90) << "the greeting came before detect_timeout ran out: " << waited;
  EXPECT_LT(elapsed_ms(waited), 1000) << waited;
  EXPECT_TRUE(metrics_reach({{detections("opaque_port"), 1}, {detections("timeout"), 1}}));

  // A destination in no cluster is passed through uninspected: no wait either.
  const auto passed = peer({"client-greeting", "198.51.100.8", "7001"});
  ASSERT_TRUE(succeeded(passed)) << passed << proxy_output();
  EXPECT_LT(elapsed_ms(passed), 500) << passed;

  metrics_reach(
      {{detections("opaque_port"), 1}, {detections("timeout"), 1}, {passthrough("allowed"), 1}, {kTcpTunnels, 3}});
  const auto lines = access_log([](const json::object& o) { return str(o, "protocol") == "TCP"; }, 3);
  ASSERT_EQ(lines.size(), 3u) << proxy_output();
  std::vector<std::string> clusters;
  for (const auto& upstream : {"198.51.100.8:3306", "198.51.100.8:7000", "198.51.100.8:7001"})
    for (const auto& l : lines)
      if (str(l, "upstream_host") == upstream) clusters.push_back(str(l, "cluster"));
  EXPECT_EQ(clusters, (std::vector<std::string>{"mysql", "greeter", "passthrough"})) << proxy_output();
}

TEST_F(OriginalDestination, IPv6DestinationsAreRoutedTheSameWay) {
  if (!ipv6_) GTEST_SKIP() << "no IPv6 here (ip6tables, or an IPv6 address in the namespace)";
  server("http-server", "2001:db8::7", 80);
  server("echo-server", "2001:db8::8", 9000);
  const auto http = peer({"client-http", "2001:db8::7", "80"});
  ASSERT_TRUE(succeeded(http)) << http << proxy_output();
  EXPECT_EQ(field(http.out, "status"), "200") << http;
  EXPECT_TRUE(field(http.out, "x-request-id:")) << "the upstream saw no x-request-id: " << http.out;
  const auto tcp = peer({"client-echo", "2001:db8::8", "9000", "six"});
  ASSERT_TRUE(succeeded(tcp)) << tcp << proxy_output();
  EXPECT_EQ(field(tcp.out, "echo"), "six");

  const auto to_known = access_log(to_upstream("[2001:db8::7]:80"));
  ASSERT_EQ(to_known.size(), 1u) << proxy_output();
  EXPECT_EQ(str(to_known[0], "route"), "outbound6/destination");
  EXPECT_EQ(str(to_known[0], "cluster"), "known6");
  const auto passed = access_log(to_upstream("[2001:db8::8]:9000"));
  ASSERT_EQ(passed.size(), 1u) << proxy_output();
  EXPECT_EQ(str(passed[0], "cluster"), "passthrough");
  EXPECT_EQ(str(passed[0], "listener"), "outbound6");
  metrics_reach(
      {{R"(outrigger_protocol_detections_total{direction="outbound",listener="outbound6",result="http1"})", 1},
       {R"(outrigger_passthrough_connections_total{direction="outbound",listener="outbound6",decision="allowed"})",
        1}});
}

TEST_F(OriginalDestinationDenied, ADestinationInNoClusterIsClosedWithoutData) {
  const auto& echo = server("echo-server", "198.51.100.8", 9000);
  const auto r = peer({"client-silent", "198.51.100.8", "9000"});
  ASSERT_TRUE(succeeded(r)) << r << proxy_output();
  EXPECT_EQ(field(r.out, "bytes"), "0") << r;
  // Closed at once, not after detect_timeout or some idle timeout.
  EXPECT_LT(elapsed_ms(r), 500) << r;
  EXPECT_TRUE(metrics_reach({{passthrough("denied"), 1}, {passthrough("allowed"), 0}}));
  EXPECT_EQ(echo.out().find("accepted "), std::string::npos) << "the destination was reached: " << echo.out();
  // One access-log line says why, and where it was going.
  const auto refused = access_log([](const json::object& o) { return str(o, "error") == "passthrough_denied"; });
  ASSERT_EQ(refused.size(), 1u) << proxy_output();
  EXPECT_EQ(str(refused[0], "upstream_host"), "198.51.100.8:9000");
  EXPECT_EQ(str(refused[0], "protocol"), "TCP");

  // A cluster's endpoint is still reached.
  server("http-server", "198.51.100.7", 80);
  const auto known = peer({"client-http", "198.51.100.7", "80"});
  ASSERT_TRUE(succeeded(known)) << known << proxy_output();
  EXPECT_EQ(field(known.out, "status"), "200") << known;
  metrics_reach({{passthrough("denied"), 1}, {detections("http1"), 1}});
}

}  // namespace
