// `outrigger iptables` as an init container runs it, in two network
// namespaces the test creates (a pod and a peer, joined by a veth pair on
// 198.51.100.0/24): the application's outbound TCP goes through the proxy's
// outbound listener, traffic to the pod through its inbound listener to the
// application on 127.0.0.1, the proxy's own connections (its UID, 2102) and
// an excluded port go straight; running it twice leaves one set of rules,
// and --cleanup removes them. Needs root, `ip`, `iptables` and `setpriv`;
// otherwise it skips and says why.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <sstream>
#include <thread>

#include "support/net.hpp"
#include "support/process.hpp"

namespace {

using namespace testing_support;
using Result = testing_support::Run;

const std::string kPeer = OUTRIGGER_SOURCE_DIR "/test/tools/netns/peer.py";

int count(const std::string& text, const std::string& part) {
  int n = 0;
  for (auto pos = text.find(part); pos != std::string::npos; pos = text.find(part, pos + part.size())) ++n;
  return n;
}

class Interception : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces and iptables)";
    for (const char* program : {"ip", "iptables", "setpriv"})
      if (!have_program(program)) GTEST_SKIP() << "`" << program << "` is not installed (iproute2, iptables, util-linux)";
    static std::atomic<int> n{0};
    const auto id = std::to_string(::getpid() % 100000) + "-" + std::to_string(++n);
    pod_ = "outrigger-ipt-p" + id;
    peer_ns_ = "outrigger-ipt-q" + id;
    for (const auto& ns : {pod_, peer_ns_}) {
      if (run_program({"ip", "netns", "add", ns}).exit_code != 0) GTEST_SKIP() << "`ip netns add` failed here";
      made_.push_back(ns);
    }
    const std::string a = "oip" + id, b = "oiq" + id;  // veth names, unique while in the root namespace
    if (run_program({"ip", "link", "add", a, "type", "veth", "peer", "name", b}).exit_code != 0)
      GTEST_SKIP() << "no veth pairs here";
    for (const auto& cmd : std::vector<std::vector<std::string>>{
             {"ip", "link", "set", a, "netns", pod_},
             {"ip", "link", "set", b, "netns", peer_ns_},
             {"ip", "-n", pod_, "addr", "add", "198.51.100.1/24", "dev", a},
             {"ip", "-n", peer_ns_, "addr", "add", "198.51.100.2/24", "dev", b},
             {"ip", "-n", pod_, "link", "set", a, "up"},
             {"ip", "-n", peer_ns_, "link", "set", b, "up"},
             {"ip", "-n", pod_, "link", "set", "lo", "up"},
             {"ip", "-n", peer_ns_, "link", "set", "lo", "up"}}) {
      const auto r = run_program(cmd);
      ASSERT_EQ(r.exit_code, 0) << cmd[0] << " " << cmd[1] << " " << cmd[2] << ": " << r.err;
    }
    // Readable by the proxy's own UID.
    ::chmod(dir_.path().c_str(), 0755);
    config_ = dir_.write("outrigger.yaml", R"(
workers: 1
admin: { address: 127.0.0.1:9901 }
access_log: { path: stdout, format: json }
listeners:
  - name: outbound
    address: 127.0.0.1:15001
    direction: outbound
    original_destination: true
  - name: inbound
    address: 0.0.0.0:15006
    original_destination: true
    application_address: 127.0.0.1
clusters:
  - { name: peer-web, endpoints: [198.51.100.2:80] }
  - { name: app, endpoints: [127.0.0.1:8080] }
)");
    ::chmod(config_.c_str(), 0644);
    server(peer_ns_, "http-server", "198.51.100.2", "80");
    server(peer_ns_, "echo-server", "198.51.100.2", "5432");
    server(pod_, "http-server", "127.0.0.1", "8080");  // the application
    proxy_ = std::make_unique<Child>(std::vector<std::string>{"ip", "netns", "exec", pod_, "setpriv", "--reuid", "2102",
                                                              "--regid", "2102", "--clear-groups", OUTRIGGER_BINARY,
                                                              "run", "-c", config_},
                                     dir_, "outrigger");
    const auto ready = in(pod_, {kPython, kPeer, "wait-ready", "9901"}, 15s);
    ASSERT_EQ(ready.exit_code, 0) << ready.out << proxy_->err();
  }

  void TearDown() override {
    servers_.clear();
    proxy_.reset();
    for (const auto& ns : made_) run_program({"ip", "netns", "del", ns});
  }

  Result in(const std::string& ns, const std::vector<std::string>& args, std::chrono::milliseconds timeout = 10s) {
    std::vector<std::string> argv{"ip", "netns", "exec", ns};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(argv, timeout);
  }
  Result iptables(const std::vector<std::string>& args) {
    std::vector<std::string> argv{OUTRIGGER_BINARY, "iptables"};
    argv.insert(argv.end(), args.begin(), args.end());
    return in(pod_, argv, 30s);
  }
  std::string saved(const char* save = "iptables-save") { return in(pod_, {save, "-t", "nat"}).out; }
  void server(const std::string& ns, const std::string& kind, const std::string& host, const std::string& port) {
    auto& child = servers_.emplace_back(std::make_unique<Child>(
        std::vector<std::string>{"ip", "netns", "exec", ns, kPython, kPeer, "--lifetime", "60", kind, host, port}, dir_,
        kind + "-" + ns + "-" + port));
    ASSERT_TRUE(child->wait_for_output("listening\n", 10s)) << child->err();
  }
  // The proxy's access-log lines that contain `part`.
  int logged(const std::string& part) { return count(proxy_->out(), part); }

  TempDir dir_;
  std::string pod_, peer_ns_, config_;
  std::vector<std::string> made_;
  std::vector<std::unique_ptr<Child>> servers_;
  std::unique_ptr<Child> proxy_;
};

TEST_F(Interception, SendsThePodsTrafficThroughItsSidecar) {
  auto installed = iptables({"--exclude-outbound-ports", "5432"});
  ASSERT_EQ(installed.exit_code, 0) << installed.out << installed.err;

  // Outbound: the application (root here, not the proxy's UID) calls the
  // peer by its plain address; the proxy's own connection to it is not
  // redirected again.
  const auto call = in(pod_, {kPython, kPeer, "client-http", "198.51.100.2", "80"});
  ASSERT_EQ(call.exit_code, 0) << call.out << call.err << proxy_->err();
  EXPECT_NE(call.out.find("status 200"), std::string::npos) << call.out;
  EXPECT_NE(call.out.find("x-request-id: "), std::string::npos) << "not through the proxy: " << call.out;
  EXPECT_TRUE(eventually([&] { return logged(R"("route":"outbound/destination","cluster":"peer-web")") == 1; }))
      << proxy_->out();

  // An excluded port goes straight.
  const auto db = in(pod_, {kPython, kPeer, "client-echo", "198.51.100.2", "5432", "select"});
  ASSERT_EQ(db.exit_code, 0) << db.out << db.err;
  EXPECT_NE(db.out.find("echo select"), std::string::npos) << db.out;
  EXPECT_EQ(logged("198.51.100.2:5432"), 0) << proxy_->out();

  // Inbound: the peer calls the pod; the proxy delivers to the application on 127.0.0.1.
  const auto inbound = in(peer_ns_, {kPython, kPeer, "client-http", "198.51.100.1", "8080"});
  ASSERT_EQ(inbound.exit_code, 0) << inbound.out << inbound.err << proxy_->err();
  EXPECT_NE(inbound.out.find("x-forwarded-for: 198.51.100.2"), std::string::npos) << inbound.out;
  EXPECT_TRUE(eventually([&] { return logged(R"("cluster":"app","listener":"inbound")") == 1; })) << proxy_->out();
  // The admin port is not redirected (probes and scrapes reach the proxy itself).
  const auto admin = in(peer_ns_, {kPython, kPeer, "client-http", "198.51.100.1", "9901"});
  EXPECT_NE(admin.exit_code, 0) << "the admin port answered through the pod address: " << admin.out;
}

TEST_F(Interception, RunningItTwiceLeavesOneSetAndCleanupRemovesIt) {
  const auto dry = iptables({"--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_NE(dry.out.find("-A OUTRIGGER_OUTPUT -m owner --uid-owner 2102 -j RETURN"), std::string::npos) << dry.out;
  EXPECT_EQ(count(saved(), "OUTRIGGER"), 0) << "--dry-run changed something";

  for (int i = 0; i < 2; ++i) {
    const auto r = iptables({"--exclude-inbound-ports", "22"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  const auto rules = saved();
  EXPECT_EQ(count(rules, "-A OUTPUT -p tcp -j OUTRIGGER_OUTPUT"), 1) << rules;
  EXPECT_EQ(count(rules, "-A PREROUTING -p tcp -j OUTRIGGER_INBOUND"), 1) << rules;
  EXPECT_EQ(count(rules, "--uid-owner 2102"), 1) << rules;
  EXPECT_EQ(count(rules, "--dport 22 -j RETURN"), 1) << rules;
  if (have_program("ip6tables")) {
    EXPECT_EQ(count(saved("ip6tables-save"), "-A OUTPUT -p tcp -j OUTRIGGER_OUTPUT"), 1);
  }

  const auto clean = iptables({"--cleanup"});
  ASSERT_EQ(clean.exit_code, 0) << clean.out << clean.err;
  EXPECT_EQ(count(saved(), "OUTRIGGER"), 0) << saved();
  if (have_program("ip6tables")) {
    EXPECT_EQ(count(saved("ip6tables-save"), "OUTRIGGER"), 0);
  }
  // Traffic goes straight again.
  const auto call = in(pod_, {kPython, kPeer, "client-http", "198.51.100.2", "80"});
  ASSERT_EQ(call.exit_code, 0) << call.out;
  EXPECT_EQ(call.out.find("x-request-id: "), std::string::npos) << call.out;
  // A second cleanup finds nothing to remove and is fine with it.
  EXPECT_EQ(iptables({"--cleanup"}).exit_code, 0);
}

}  // namespace
