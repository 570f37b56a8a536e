// The `outrigger` command as a user runs it: version, validate, run with
// SIGHUP reload and SIGTERM drain.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/net.hpp"
#include "support/process.hpp"

namespace {

using namespace testing_support;

Run run(const TempDir& dir, const std::vector<std::string>& rest) {
  // Built in order rather than inserted at the front: GCC 12 -O2 warns wrongly
  // (-Warray-bounds) about a string inserted into a vector.
  std::vector<std::string> args{OUTRIGGER_BINARY};
  for (const auto& a : rest) args.push_back(a);
  const auto out = dir.file("out.txt"), err = dir.file("err.txt");
  const int code = wait_exit(spawn(args, out, err), 10s);
  return {code, slurp(out), slurp(err)};
}

TEST(Binary, PrintsItsVersion) {
  TempDir dir;
  const auto r = run(dir, {"version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "outrigger 0.1.0\n");
}

TEST(Binary, ValidatesTheShippedDefaultConfig) {
  TempDir dir;
  const auto r = run(dir, {"validate", "-c", std::string(OUTRIGGER_SOURCE_DIR) + "/config/outrigger.yaml"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(Binary, ValidatesTheShippedExamplesThatRunOutsideAPod) {
  // (mesh-mtls.yaml names Kubernetes services and mounted secrets.)
  for (const char* example : {"routing.yaml", "grpc.yaml", "sidecar.yaml"}) {
    TempDir dir;
    const auto r = run(dir, {"validate", "-c", std::string(OUTRIGGER_SOURCE_DIR) + "/config/examples/" + example});
    EXPECT_EQ(r.exit_code, 0) << example << ": " << r.err;
  }
}

TEST(Binary, ListsEveryProblemOfABadConfigAndExitsTwo) {
  TempDir dir;
  const auto file = dir.write("bad.yaml", R"(listners: []
listeners:
  - name: x
    address: 127.0.0.1:80
    routes: [{ cluster: nope, timeout: 5 seconds }]
)");
  const auto r = run(dir, {"validate", "-c", file});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(file + ":1:1: unknown key 'listners'; did you mean 'listeners'?"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(file + ":5:40: listeners[0].routes[0].timeout: invalid duration '5 seconds'"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("names unknown cluster 'nope'"), std::string::npos) << r.err;
  const auto refused = run(dir, {"run", "-c", file});
  EXPECT_EQ(refused.exit_code, 2);
}

TEST(Binary, ReloadsOnSighupAndDrainsOnSigterm) {
  TempDir dir;
  const auto port = closed_port(), admin = closed_port();
  auto config = [&](const std::string& body) {
    return fill(R"(
admin: { address: 127.0.0.1:{ADMIN} }
workers: 1
log_level: info
listeners:
  - name: ingress
    address: 127.0.0.1:{PORT}
    routes: [{ match: { path: /hello }, direct_response: { status: 200, body: "{BODY}" } }]
)",
                {{"ADMIN", std::to_string(admin)}, {"PORT", std::to_string(port)}, {"BODY", body}});
  };
  const auto file = dir.write("config.yaml", config("first"));
  const pid_t pid = spawn({OUTRIGGER_BINARY, "run", "-c", file}, dir.file("out.txt"), dir.file("err.txt"));
  bool ready = false;
  for (int i = 0; i < 300 && !ready; ++i) {
    auto r = http_get(admin, "/ready");
    ready = r && r->result_int() == 200;
    if (!ready) std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(ready) << slurp(dir.file("err.txt"));
  EXPECT_EQ(http_get(port, "/hello")->body(), "first");

  dir.write("config.yaml", config("second"));
  ::kill(pid, SIGHUP);
  bool reloaded = false;
  for (int i = 0; i < 300 && !reloaded; ++i) {
    auto r = http_get(port, "/hello");
    reloaded = r && r->body() == "second";
    if (!reloaded) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(reloaded);

  dir.write("config.yaml", "listeners: [oops");
  ::kill(pid, SIGHUP);
  bool rejected = false;  // the rejection is logged
  for (int i = 0; i < 300 && !rejected; ++i) {
    rejected = slurp(dir.file("err.txt")).find("reload rejected") != std::string::npos;
    if (!rejected) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(rejected) << slurp(dir.file("err.txt"));
  EXPECT_EQ(http_get(port, "/hello")->body(), "second");

  ::kill(pid, SIGTERM);
  EXPECT_EQ(wait_exit(pid, 5s), 0);
  const auto log = slurp(dir.file("err.txt"));
  EXPECT_NE(log.find("config reloaded"), std::string::npos) << log;
  EXPECT_NE(log.find("reload rejected"), std::string::npos) << log;
}

// `outrigger wait` (a classic sidecar's postStart hook): returns once /ready
// answers 200, keeps polling through 503s, and fails after its timeout.
TEST(Binary, WaitReturnsOnceReadyAndFailsAfterItsTimeout) {
  std::atomic<int> asked{0};
  FakeUpstream admin([&](FakeUpstream::Exchange& ex) {
    EXPECT_EQ(ex.request.target(), "/ready");
    FakeUpstream::reply(ex, ++asked < 3 ? 503 : 200, "");  // ready on the third probe
  });
  TempDir dir;
  auto r = run(dir, {"wait", "--admin-port", std::to_string(admin.port()), "--timeout", "8s"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "outrigger wait: ready\n");
  EXPECT_GE(asked.load(), 3);

  FakeUpstream never([](FakeUpstream::Exchange& ex) { FakeUpstream::reply(ex, 503, ""); });
  r = run(dir, {"wait", "--admin-port", std::to_string(never.port()), "--timeout", "300ms"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not ready after 300ms (last status 503)"), std::string::npos) << r.err;
  r = run(dir, {"wait", "--timeout", "soon"});
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
