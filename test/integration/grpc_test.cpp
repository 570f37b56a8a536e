// Real gRPC through Outrigger: grpc-core clients and servers (Python,
// test/tools/grpc/grpc_peer.py) on either side of the proxy. Unary and the
// three streaming kinds over h2c and TLS, metadata and trailers (binary too),
// statuses in trailers and trailers-only, deadlines (grpc-timeout capped by
// the route timeout), retries on gRPC statuses, local replies as gRPC errors,
// and the gRPC metrics.
//
// Needs Debian's /usr/bin/python3 with python3-grpcio; without it every test
// skips and says so.
#include <gtest/gtest.h>

#include <unistd.h>

#include <boost/json.hpp>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "support/net.hpp"
#include "support/pki.hpp"
#include "support/process.hpp"

namespace {

using namespace testing_support;
namespace json = boost::json;

const std::string kPeer = OUTRIGGER_SOURCE_DIR "/test/tools/grpc/grpc_peer.py";

bool have_grpc() {
  static const bool ok = run_program({kPython, "-c", "import grpc"}, 20s).exit_code == 0;
  return ok;
}

#define REQUIRE_GRPC()                                                                              \
  do {                                                                                              \
    if (!have_grpc())                                                                               \
      GTEST_SKIP() << "python3-grpcio is not importable by " << kPython                             \
                   << " (apt-get install python3-grpcio): the gRPC integration tests need it";      \
  } while (0)

// A key no other call of this run carries (the server counts x-fail-first per key).
std::string unique_key(const std::string& prefix) {
  static std::atomic<int> n{0};
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
}

std::string str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// grpc_peer.py server --log-calls on 127.0.0.1:0.
class GrpcServer {
 public:
  GrpcServer() : child_({kPython, kPeer, "server", "--port", "0", "--log-calls"}, dir_, "grpc_server") {
    if (!child_.wait_for_output("LISTENING", 15s)) {
      ADD_FAILURE() << "grpc_peer.py server did not start: " << child_.out() << child_.err();
      return;
    }
    std::istringstream in(child_.out());
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("LISTENING ", 0) == 0) port_ = static_cast<std::uint16_t>(std::stoi(line.substr(10)));
  }
  std::uint16_t port() const { return port_; }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return child_.out(); }

  // The calls it logged (one JSON object a line), those carrying x-key `key` when given.
  std::vector<json::object> calls(const std::string& key = "") const {
    std::vector<json::object> out;
    std::istringstream in(child_.out());
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] != '{') continue;
      boost::system::error_code ec;
      auto v = json::parse(line, ec);
      if (ec || !v.is_object()) continue;
      const auto& o = v.as_object();
      if (!key.empty()) {
        const auto* md = o.if_contains("metadata");
        if (!md || !md->is_object() || str(md->as_object(), "x-key") != key) continue;
      }
      out.push_back(o);
    }
    return out;
  }

 private:
  TempDir dir_;
  Child child_;
  std::uint16_t port_ = 0;
};

struct CallResult {
  bool parsed = false;
  std::string code, details;
  std::vector<std::string> responses;
  json::object initial, trailing;
  std::chrono::milliseconds elapsed{0};
  std::string raw;  // the tool's output, for failure messages
};

std::ostream& operator<<(std::ostream& os, const CallResult& r) { return os << r.raw; }

struct Tls {
  std::string ca, authority;
};

// grpc_peer.py call --target 127.0.0.1:port --method M <args...>
CallResult call(std::uint16_t port, const std::string& method, std::vector<std::string> args = {},
                const Tls* tls = nullptr) {
  std::vector<std::string> argv = {kPython, kPeer, "call", "--target", "127.0.0.1:" + std::to_string(port),
                                   "--method", method};
  if (tls) argv.insert(argv.end(), {"--tls-ca", tls->ca, "--authority", tls->authority});
  argv.insert(argv.end(), args.begin(), args.end());
  // Not run_program(): its TempDir is named after the test, like the
  // GrpcServer's, and removing it would take the server's call log with it.
  // Files of its own instead, in a directory of its own.
  char tmpl[] = "/tmp/outrigger-grpc-call-XXXXXX";
  if (!::mkdtemp(tmpl)) return CallResult{.raw = "mkdtemp failed"};
  const std::filesystem::path dir(tmpl);
  const std::string out = (dir / "call.out").string();
  const std::string err = (dir / "call.err").string();
  const auto start = std::chrono::steady_clock::now();
  Run run;
  run.exit_code = wait_exit(spawn(argv, out, err), 20s);
  run.out = slurp(out);
  run.err = slurp(err);
  std::error_code ec_rm;
  std::filesystem::remove_all(dir, ec_rm);
  CallResult r;
  r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  r.raw = "exit " + std::to_string(run.exit_code) + ", stdout: " + run.out + ", stderr: " + run.err;
  if (run.exit_code != 0) return r;
  boost::system::error_code ec;
  auto v = json::parse(run.out, ec);
  if (ec || !v.is_object()) return r;
  const auto& o = v.as_object();
  r.parsed = true;
  r.code = str(o, "code");
  r.details = str(o, "details");
  if (const auto* resp = o.if_contains("responses"); resp && resp->is_array())
    for (const auto& m : resp->as_array())
      if (m.is_string()) r.responses.emplace_back(m.as_string());
  if (const auto* md = o.if_contains("initial_metadata"); md && md->is_object()) r.initial = md->as_object();
  if (const auto* md = o.if_contains("trailing_metadata"); md && md->is_object()) r.trailing = md->as_object();
  return r;
}

using Strings = std::vector<std::string>;

// One h2c listener `ingress` (protocol auto) routing to cluster `grpc`, and
// optionally a TLS listener `secure` with the same routes.
std::string config(const std::string& endpoint, const std::string& route = "{ cluster: grpc, timeout: 5s }",
                   const TestPki::Leaf* tls = nullptr) {
  std::string secure;
  if (tls)
    secure = fill(R"(
  - name: secure
    address: 127.0.0.1:0
    tls: { cert: {CERT}, key: {KEY} }
    routes: [{ROUTE}])",
                  {{"CERT", tls->cert}, {"KEY", tls->key}, {"ROUTE", route}});
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes: [{ROUTE}]{SECURE}
clusters:
  - { name: grpc, protocol: http2, endpoints: [{EP}] }
)",
              {{"EP", endpoint}, {"ROUTE", route}, {"SECURE", secure}});
}

// ---------------------------------------------------------------------------

TEST(Grpc, UnaryThroughH2c) {
  REQUIRE_GRPC();
  GrpcServer server;
  Proxy proxy(config(server.endpoint()));
  const auto r = call(proxy.port(), "Unary", {"--data", "hello"});
  ASSERT_TRUE(r.parsed) << r;
  EXPECT_EQ(r.code, "OK") << r;
  EXPECT_EQ(r.responses, Strings{"hello"}) << r;
  EXPECT_EQ(str(r.trailing, "x-trailer"), "done") << r;
  EXPECT_EQ(server.calls().size(), 1u) << server.log();
}

TEST(Grpc, ServerStreaming) {
  REQUIRE_GRPC();
  GrpcServer server;
  Proxy proxy(config(server.endpoint()));
  const auto r = call(proxy.port(), "ServerStream", {"--count", "5"});
  ASSERT_TRUE(r.parsed) << r;
  EXPECT_EQ(r.code, "OK") << r;
  EXPECT_EQ(r.responses, (Strings{"msg-0", "msg-1", "msg-2", "msg-3", "msg-4"})) << r;
  EXPECT_EQ(str(r.trailing, "x-trailer"), "done") << r;
}

TEST(Grpc, ClientStreaming) {
  REQUIRE_GRPC();
  GrpcServer server;
  Proxy proxy(config(server.endpoint()));
  const auto r = call(proxy.port(), "ClientStream", {"--messages", "a,b,c"});
  ASSERT_TRUE(r.parsed) << r;
  EXPECT_EQ(r.code, "OK") << r;
  EXPECT_EQ(r.responses, Strings{"abc"}) << r;
}

TEST(Grpc, BidiStreaming) {
  REQUIRE_GRPC();
  GrpcServer server;
  Proxy proxy(config(server.endpoint()));
  const auto r = call(proxy.port(), "Bidi", {"--messages", "x,y,z"});
  ASSERT_TRUE(r.parsed) << r;
  EXPECT_EQ(r.code, "OK") << r;
  EXPECT_EQ(r.responses, (Strings{"x", "y", "z"})) << r;
  EXPECT_EQ(str(r.trailing, "x-trailer"), "done") << r;
}

TEST(Grpc, MetadataAndTrailersIncludingBinaryArriveIntact) {
  REQUIRE_GRPC();
  GrpcServer server;
  Proxy proxy(config(server.endpoint()));
  const auto r = call(proxy.port(), "Unary",
                      {"--data", "m", "--metadata", "x-echo-a=1", "--metadata-bin", "x-echo-data-bin=00ff10"});
  ASSERT_TRUE(r.parsed) << r;
  EXPECT_EQ(r.code, "OK") << r;
  EXPECT_EQ(r.responses, Strings{"m"}) << r;
  EXPECT_EQ(str(r.initial, "x-echo-a"), "1") << r;
  EXPECT_EQ(str(r.initial, "x-echo-data-bin"), "00ff10") << r;
  EXPECT_EQ(str(r.trailing, "x-echo-a"), "1") << r;
  EXPECT_EQ(str(r.trailing, "x-echo-data-bin"), "00ff10") << r;
  EXPECT_EQ(str(r.trailing, "x-trailer"), "done") << r;
  // and the server saw them as sent
  const auto calls = server.calls();
  ASSERT_EQ(calls.size(), 1u) << server.log();
  const auto& md = calls[0].at("metadata").as_object();
  EXPECT_EQ(str(md, "x-echo-a"), "1") << server.log();
  EXPECT_EQ(str(md, "x-echo-data-bin"), "00ff10") << server.log();
}

TEST(Grpc, ErrorStatusPassesThrough) {
  REQUIRE_GRPC();
  GrpcServer server;
  Proxy proxy(config(server.endpoint()));
  // A trailers-only response (no x-echo-*: no initial metadata before the status).
  const auto r = call(proxy.port(), "Unary", {"--data", "q", "--metadata", "x-status=INVALID_ARGUMENT", "x-message=bad"});
  ASSERT_TRUE(r.parsed) << r;
  EXPECT_EQ(r.code, "INVALID_ARGUMENT") << r;
  EXPECT_EQ(r.details, "bad") << r;
  EXPECT_TRUE(r.responses.empty()) << r;
}

TEST(Grpc, StatusInTrailersAfterABody) {
  REQUIRE_GRPC();
  GrpcServer server;
  Proxy proxy(config(server.endpoint()));
  const auto r = call(proxy.port(), "ServerStream",
                      {"--count", "3", "--metadata", "x-status=INTERNAL", "x-message=broke"});
  ASSERT_TRUE(r.parsed) << r;
  EXPECT_EQ(r.code, "INTERNAL") << r;
  EXPECT_EQ(r.details, "broke") << r;
  EXPECT_EQ(r.responses, Strings{"msg-0"}) << r;
}

TEST(Grpc, DeadlineExpires) {
  REQUIRE_GRPC();
  GrpcServer server;
  Proxy proxy(config(server.endpoint()));
  const auto r = call(proxy.port(), "Unary", {"--data", "s", "--timeout", "0.5", "--metadata", "x-sleep-ms=3000"});
  ASSERT_TRUE(r.parsed) << r;
  EXPECT_EQ(r.code, "DEADLINE_EXCEEDED") << r;
  // Python start-up included; the 3 s the server sleeps are not.
  EXPECT_LT(r.elapsed, 2500ms) << r;
  // The proxy passed the deadline on: the server saw about 0.5 s.
  const auto calls = server.calls();
  ASSERT_EQ(calls.size(), 1u) << server.log();
  const auto& tr = calls[0].at("time_remaining");
  ASSERT_TRUE(tr.is_number()) << server.log();
  EXPECT_LE(tr.to_number<double>(), 0.5) << server.log();
}

TEST(Grpc, GrpcTimeoutIsCappedByTheRouteTimeout) {
  REQUIRE_GRPC();
  GrpcServer server;
  Proxy proxy(config(server.endpoint(), "{ cluster: grpc, timeout: 1s }"));
  const auto key = unique_key("cap");
  const auto r = call(proxy.port(), "Unary", {"--data", "t", "--timeout", "30", "--metadata", "x-key=" + key});
  ASSERT_TRUE(r.parsed) << r;
  EXPECT_EQ(r.code, "OK") << r;
  const auto calls = server.calls(key);
  ASSERT_EQ(calls.size(), 1u) << server.log();
  const auto& tr = calls[0].at("time_remaining");
  ASSERT_TRUE(tr.is_number()) << "the server saw no deadline: " << server.log();
  EXPECT_LE(tr.to_number<double>(), 1.0) << server.log();
  EXPECT_GT(tr.to_number<double>(), 0.0) << server.log();
}

TEST(Grpc, RetriesUnavailable) {
  REQUIRE_GRPC();
  GrpcServer server;
  Proxy proxy(config(server.endpoint(),
                     "{ cluster: grpc, timeout: 5s, retry: { retry_on: [unavailable], num_retries: 2, "
                     "backoff: { base: 1ms } } }"));
  const auto key = unique_key("retry");
  const auto r = call(proxy.port(), "Unary", {"--data", "r", "--metadata", "x-fail-first=2", "x-key=" + key});
  ASSERT_TRUE(r.parsed) << r;
  EXPECT_EQ(r.code, "OK") << r;
  EXPECT_EQ(r.responses, Strings{"r"}) << r;
  EXPECT_EQ(server.calls(key).size(), 3u) << server.log();
}

TEST(Grpc, WithoutARetryPolicyUnavailableReachesTheClient) {
  REQUIRE_GRPC();
  GrpcServer server;
  Proxy proxy(config(server.endpoint()));
  const auto key = unique_key("noretry");
  const auto r = call(proxy.port(), "Unary", {"--data", "r", "--metadata", "x-fail-first=2", "x-key=" + key});
  ASSERT_TRUE(r.parsed) << r;
  EXPECT_EQ(r.code, "UNAVAILABLE") << r;
  EXPECT_EQ(server.calls(key).size(), 1u) << server.log();
}

TEST(Grpc, RetriesAStatusInTrailersAfterASmallBody) {
  REQUIRE_GRPC();
  GrpcServer server;
  Proxy proxy(config(server.endpoint(),
                     "{ cluster: grpc, timeout: 5s, retry: { retry_on: [unavailable], num_retries: 1, "
                     "backoff: { base: 1ms } } }"));
  const auto key = unique_key("trailers");
  const auto r = call(proxy.port(), "ServerStream",
                      {"--count", "3", "--metadata", "x-status=UNAVAILABLE", "x-message=later", "x-key=" + key});
  ASSERT_TRUE(r.parsed) << r;
  EXPECT_EQ(r.code, "UNAVAILABLE") << r;
  EXPECT_EQ(r.details, "later") << r;
  // The proxy held the first try's msg-0, saw UNAVAILABLE in the trailers,
  // discarded it and retried; the client got the last try's only.
  EXPECT_EQ(r.responses, Strings{"msg-0"}) << r;
  EXPECT_EQ(server.calls(key).size(), 2u) << server.log();
}

TEST(Grpc, NoRouteIsUnimplemented) {
  REQUIRE_GRPC();
  GrpcServer server;
  Proxy proxy(config(server.endpoint(), "{ match: { prefix: /nothing }, cluster: grpc }"));
  const auto r = call(proxy.port(), "Unary", {"--data", "n"});
  ASSERT_TRUE(r.parsed) << r;
  EXPECT_EQ(r.code, "UNIMPLEMENTED") << r;
  EXPECT_FALSE(r.details.empty()) << r;
  EXPECT_TRUE(server.calls().empty()) << server.log();
}

TEST(Grpc, EndpointDownIsUnavailable) {
  REQUIRE_GRPC();
  Proxy proxy(config("127.0.0.1:" + std::to_string(closed_port())));
  const auto r = call(proxy.port(), "Unary", {"--data", "d"});
  ASSERT_TRUE(r.parsed) << r;
  EXPECT_EQ(r.code, "UNAVAILABLE") << r;
  EXPECT_FALSE(r.details.empty()) << r;
}

// A listener with one filter in front of the route to the gRPC server.
std::string config_with_filter(const std::string& endpoint, const std::string& filter) {
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    filters: [{FILTER}]
    routes: [{ cluster: grpc, timeout: 5s }]
clusters:
  - { name: grpc, protocol: http2, endpoints: [{EP}] }
)",
              {{"EP", endpoint}, {"FILTER", filter}});
}

TEST(Grpc, AnRbacDenialIsPermissionDenied) {
  REQUIRE_GRPC();
  GrpcServer server;
  // Readers may only GET: a gRPC call (a POST) is denied.
  Proxy proxy(config_with_filter(server.endpoint(), R"({ type: rbac, roles: { reader: [{ methods: [GET] }] },
        bindings: [{ role: reader, principals: [{ source_ip: 127.0.0.0/8 }] }] })"));
  const auto r = call(proxy.port(), "Unary", {"--data", "x"});
  ASSERT_TRUE(r.parsed) << r;
  EXPECT_EQ(r.code, "PERMISSION_DENIED") << r;
  EXPECT_TRUE(server.calls().empty()) << server.log();
}

TEST(Grpc, ARateLimitIsUnavailable) {
  REQUIRE_GRPC();
  GrpcServer server;
  Proxy proxy(config_with_filter(server.endpoint(), "{ type: local_rate_limit, tokens_per_second: 0.01, burst: 1 }"));
  EXPECT_EQ(call(proxy.port(), "Unary", {"--data", "1"}).code, "OK");
  const auto r = call(proxy.port(), "Unary", {"--data", "2"});
  ASSERT_TRUE(r.parsed) << r;
  EXPECT_EQ(r.code, "UNAVAILABLE") << r;  // the gRPC spec's mapping of 429
  EXPECT_EQ(server.calls().size(), 1u) << server.log();
}

TEST(Grpc, TheRouteTimeoutIsDeadlineExceededFromTheProxy) {
  REQUIRE_GRPC();
  GrpcServer server;
  Proxy proxy(config(server.endpoint(), "{ cluster: grpc, timeout: 300ms }"));
  // The client would wait 30 s, the server 3 s: the route's 300 ms end the
  // call. The server was told what was left (grpc-timeout), so its own
  // DEADLINE_EXCEEDED may beat the proxy's by a hair; either way the client
  // gets DEADLINE_EXCEEDED at the route timeout, never a reset stream.
  const auto r = call(proxy.port(), "Unary", {"--data", "t", "--timeout", "30", "--metadata", "x-sleep-ms=3000"});
  ASSERT_TRUE(r.parsed) << r;
  EXPECT_EQ(r.code, "DEADLINE_EXCEEDED") << r;
  EXPECT_LT(r.elapsed, 2500ms) << r;  // Python start-up included
  if (r.details == "upstream request timeout") {
    EXPECT_EQ(str(r.trailing, "x-outrigger-error"), "timeout") << r;
  }
}

TEST(Grpc, TlsListenerUnaryAndBidi) {
  REQUIRE_GRPC();
  GrpcServer server;
  TestPki pki;
  const auto leaf = pki.issue("grpc", {.dns = {"grpc.local"}});
  Proxy proxy(config(server.endpoint(), "{ cluster: grpc, timeout: 5s }", &leaf));
  const Tls tls{pki.ca_path(), "grpc.local"};
  const auto u = call(proxy.port("secure"), "Unary", {"--data", "hello"}, &tls);
  ASSERT_TRUE(u.parsed) << u;
  EXPECT_EQ(u.code, "OK") << u;
  EXPECT_EQ(u.responses, Strings{"hello"}) << u;
  EXPECT_EQ(str(u.trailing, "x-trailer"), "done") << u;
  const auto b = call(proxy.port("secure"), "Bidi", {"--messages", "x,y,z"}, &tls);
  ASSERT_TRUE(b.parsed) << b;
  EXPECT_EQ(b.code, "OK") << b;
  EXPECT_EQ(b.responses, (Strings{"x", "y", "z"})) << b;
  EXPECT_EQ(server.calls().size(), 2u) << server.log();
}

TEST(Grpc, MetricsCountCallsByGrpcStatus) {
  REQUIRE_GRPC();
  GrpcServer server;
  Proxy proxy(config(server.endpoint()));
  for (int i = 0; i < 3; ++i) {
    const auto r = call(proxy.port(), "Unary", {"--data", "ok"});
    ASSERT_EQ(r.code, "OK") << r;
  }
  const auto bad = call(proxy.port(), "Unary", {"--data", "q", "--metadata", "x-status=INVALID_ARGUMENT"});
  ASSERT_EQ(bad.code, "INVALID_ARGUMENT") << bad;
  std::string m;
  // Counted when the exchange ends, which may be just after the client saw it.
  EXPECT_TRUE(eventually([&] {
    m = metrics(proxy);
    return has(m, "outrigger_grpc_requests_total{") && has(m, "grpc_status=\"0\"") && has(m, "grpc_status=\"3\"");
  })) << m;
  // Each status's series, with its count.
  std::istringstream in(m);
  std::string line;
  bool ok_seen = false, bad_seen = false;
  while (std::getline(in, line)) {
    if (line.rfind("outrigger_grpc_requests_total{", 0) != 0) continue;
    if (line.find("grpc_status=\"0\"") != std::string::npos) {
      ok_seen = true;
      EXPECT_EQ(line.substr(line.rfind(' ') + 1), "3") << line;
    }
    if (line.find("grpc_status=\"3\"") != std::string::npos) {
      bad_seen = true;
      EXPECT_EQ(line.substr(line.rfind(' ') + 1), "1") << line;
    }
  }
  EXPECT_TRUE(ok_seen && bad_seen) << m;
}

}  // namespace
