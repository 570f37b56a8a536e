// `outrigger run --upgrade-from PATH`: the new binary takes the listening
// sockets of the running one over a Unix socket, the old one drains and
// exits 0, and clients under load see no refusal and no failed request.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "support/net.hpp"
#include "support/process.hpp"

namespace {

using namespace testing_support;

// A spawned outrigger, killed with its group if the test did not see it end.
struct Process {
  Process(const std::vector<std::string>& args, const TempDir& dir, const std::string& name)
      : err(dir.file(name + ".err")) {
    std::vector<std::string> argv{OUTRIGGER_BINARY};
    for (const auto& a : args) argv.push_back(a);
    pid = spawn(argv, dir.file(name + ".out"), err);
  }
  ~Process() {
    if (!reaped) wait_exit(pid, 0ms);  // kills it
  }
  int wait(std::chrono::milliseconds timeout) {
    reaped = true;
    return wait_exit(pid, timeout);
  }
  std::string log() const { return slurp(err); }
  bool logged(const std::string& text, std::chrono::milliseconds timeout = 10s) const {
    return eventually([&] { return log().find(text) != std::string::npos; }, timeout);
  }
  pid_t pid;
  std::string err;
  bool reaped = false;
};

std::string config(const std::string& name, int workers, std::uint16_t port, std::uint16_t admin,
                   std::uint16_t upstream, const std::string& more_listeners = "") {
  return fill(R"(
admin: { address: 127.0.0.1:{ADMIN} }
workers: {WORKERS}
log_level: info
drain_timeout: 5s
listeners:
  - name: ingress
    address: 127.0.0.1:{PORT}
    routes:
      - match: { path: /which }
        direct_response: { status: 200, body: "{NAME}" }
      - cluster: app
        request_headers_to_add: { x-served-by: "{NAME}" }
{MORE}clusters:
  - { name: app, endpoints: [127.0.0.1:{UP}] }
)",
              {{"ADMIN", std::to_string(admin)},
               {"WORKERS", std::to_string(workers)},
               {"PORT", std::to_string(port)},
               {"UP", std::to_string(upstream)},
               {"NAME", name},
               {"MORE", more_listeners}});
}

bool ready(std::uint16_t admin) {
  return eventually(
      [&] {
        auto r = http_get(admin, "/ready");
        return r && r->result_int() == 200;
      },
      10s);
}

// The upstream answers with the name of the proxy that forwarded the
// request; /slow after 300 ms, so that requests are in flight at the swap.
void upstream_handler(FakeUpstream::Exchange& ex) {
  if (ex.request.target() == "/slow") std::this_thread::sleep_for(300ms);
  FakeUpstream::reply(ex, 200, std::string(ex.request["x-served-by"]));
}

// What the load saw.
struct Tally {
  std::atomic<int> ok{0}, refused{0}, failed{0};
  std::atomic<int> idle_retries{0};        // a reused idle connection closed under the request: sent again
  std::atomic<int> slow_told_to_close{0};  // slow requests in flight at a drain, answered with Connection: close
  std::mutex mutex;
  std::vector<std::string> errors;
  std::map<std::string, int> served_by;
  void fail(std::atomic<int>& what, std::string why) {
    ++what;
    std::lock_guard lock(mutex);
    if (errors.size() < 20) errors.push_back(std::move(why));
  }
  int by(const std::string& name) {
    std::lock_guard lock(mutex);
    return served_by[name];
  }
};

// An HTTP/1.1 client as browsers and Go's net/http are: a request on a
// reused keep-alive connection that the server closed while it was idle
// (no byte of a response came) is sent again on a new connection (RFC 9112
// 9.3.1). Anything else that goes wrong is a failure.
class Client {
 public:
  Client(std::uint16_t port, Tally& tally) : port_(port), tally_(tally) {}
  ~Client() { close(); }

  void get(const std::string& target, bool keep_alive) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (fd_ < 0 && !connect()) return;
      const bool reused = reused_;
      const auto text =
          request_text("GET", target, {{"host", "app"}, {"connection", keep_alive ? "keep-alive" : "close"}});
      if (::send(fd_, text.data(), text.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(text.size())) {
        const int err = errno;
        close();
        if (reused) {
          ++tally_.idle_retries;
          continue;
        }
        tally_.fail(tally_.failed, "send on a new connection: " + std::string(std::strerror(err)));
        return;
      }
      std::size_t got = 0;
      int err = 0;
      std::string unread;
      auto res = parse_response(
          [&](char* b, std::size_t n) {
            const auto r = ::recv(fd_, b, n, 0);
            if (r < 0) err = errno;
            if (r > 0) got += static_cast<std::size_t>(r);
            return static_cast<int>(r);
          },
          unread);
      if (!res) {
        close();
        if (reused && got == 0 && (err == 0 || err == ECONNRESET)) {
          ++tally_.idle_retries;
          continue;
        }
        tally_.fail(tally_.failed, target + ": no complete response (" + std::to_string(got) + " bytes, " +
                                       (err ? std::strerror(err) : "closed") + (reused ? ", reused" : ", new") + ")");
        return;
      }
      const bool closing = !res->keep_alive();
      if (closing || !keep_alive) {
        close();
      } else {
        reused_ = true;
      }
      if (res->result_int() != 200) {
        tally_.fail(tally_.failed, target + ": status " + std::to_string(res->result_int()) + " " + res->body());
        return;
      }
      if (target == "/slow" && keep_alive && closing) ++tally_.slow_told_to_close;
      ++tally_.ok;
      std::lock_guard lock(tally_.mutex);
      ++tally_.served_by[res->body()];
      return;
    }
    tally_.fail(tally_.failed, target + ": closed twice in a row");
  }

 private:
  bool connect() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      const int err = errno;
      close();
      tally_.fail(err == ECONNREFUSED ? tally_.refused : tally_.failed, "connect: " + std::string(std::strerror(err)));
      return false;
    }
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    reused_ = false;
    return true;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    reused_ = false;
  }

  std::uint16_t port_;
  Tally& tally_;
  int fd_ = -1;
  bool reused_ = false;
};

// Client threads until stop(): new connections, keep-alive requests, and
// slow keep-alive requests (so that some are in flight at any moment).
class Load {
 public:
  Load(std::uint16_t port, Tally& tally) {
    for (int i = 0; i < 6; ++i) {
      threads_.emplace_back([this, port, &tally, i] {
        Client client(port, tally);
        while (!stop_) {
          if (i < 2) {
            client.get("/fresh", false);
          } else if (i < 4) {
            client.get("/kept", true);
          } else {
            client.get("/slow", true);
          }
        }
      });
    }
  }
  ~Load() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

std::string report(Tally& t) {
  std::lock_guard lock(t.mutex);
  std::string out = "ok " + std::to_string(t.ok) + ", refused " + std::to_string(t.refused) + ", failed " +
                    std::to_string(t.failed) + ", idle retries " + std::to_string(t.idle_retries) + "\n";
  for (const auto& e : t.errors) out += "  " + e + "\n";
  return out;
}

// The whole swap under load: `from` hands over to a process with `next`'s
// config, which must serve afterwards.
void swap(const TempDir& dir, Tally& tally, Process& old, const std::string& socket, const std::string& name,
          const std::string& yaml, std::unique_ptr<Process>& next, std::uint16_t port, std::uint16_t admin) {
  const int before = tally.ok;
  ASSERT_TRUE(eventually([&] { return tally.ok >= before + 50; }, 10s)) << report(tally);
  const auto file = dir.write(name + ".yaml", yaml);
  next = std::make_unique<Process>(std::vector<std::string>{"run", "-c", file, "--upgrade-from", socket}, dir, name);
  ASSERT_TRUE(next->logged("upgrade: took over from pid " + std::to_string(old.pid))) << next->log();
  EXPECT_EQ(old.wait(10s), 0) << old.log();
  EXPECT_NE(old.log().find("upgrade: handed"), std::string::npos) << old.log();
  EXPECT_TRUE(ready(admin)) << next->log();
  auto which = http_get(port, "/which");
  ASSERT_TRUE(which);
  EXPECT_EQ(which->body(), name);
  // The load goes on through the new process.
  const int by_next = tally.by(name);
  EXPECT_TRUE(eventually([&] { return tally.by(name) >= by_next + 50; }, 10s)) << report(tally);
}

TEST(Upgrade, SwapsTheBinaryUnderLoadWithoutARefusalOrAFailedRequest) {
  TempDir dir;
  FakeUpstream up(upstream_handler);
  const auto port = closed_port(), admin = closed_port();
  const auto socket = dir.file("upgrade.sock");
  Process old({"run", "-c", dir.write("v1.yaml", config("v1", 3, port, admin, up.port())), "--upgrade-socket", socket},
              dir, "v1");
  ASSERT_TRUE(ready(admin)) << old.log();
  struct stat st {};
  ASSERT_EQ(::stat(socket.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);  // owner only

  Tally tally;
  Load load(port, tally);
  std::unique_ptr<Process> next;
  swap(dir, tally, old, socket, "v2", config("v2", 3, port, admin, up.port()), next, port, admin);
  load.stop();
  EXPECT_EQ(tally.refused, 0) << report(tally);
  EXPECT_EQ(tally.failed, 0) << report(tally);
  EXPECT_GT(tally.by("v1"), 0);
  // Slow requests in flight on the old process when it began to drain were answered there.
  EXPECT_GE(tally.slow_told_to_close, 1) << report(tally);
  std::cout << "[ upgrade ] " << report(tally);
}

TEST(Upgrade, ChainsUpgradesAcrossDifferentWorkerCounts) {
  TempDir dir;
  FakeUpstream up(upstream_handler);
  const auto port = closed_port(), admin = closed_port();
  const auto socket = dir.file("upgrade.sock");
  auto first = std::make_unique<Process>(
      std::vector<std::string>{"run", "-c", dir.write("v1.yaml", config("v1", 2, port, admin, up.port())),
                               "--upgrade-socket", socket},
      dir, "v1");
  ASSERT_TRUE(ready(admin)) << first->log();
  Tally tally;
  Load load(port, tally);
  // 2 workers to 4 (two sockets passed, two bound beside them), then 4 to 1
  // (one worker accepts on all four); the second asks where the first now listens.
  std::unique_ptr<Process> second, third;
  swap(dir, tally, *first, socket, "v2", config("v2", 4, port, admin, up.port()), second, port, admin);
  ASSERT_TRUE(second->logged("upgrade socket on " + socket)) << second->log();
  swap(dir, tally, *second, socket, "v3", config("v3", 1, port, admin, up.port()), third, port, admin);
  load.stop();
  EXPECT_EQ(tally.refused, 0) << report(tally);
  EXPECT_EQ(tally.failed, 0) << report(tally);
  EXPECT_NE(second->log().find("accepting on 4 listening sockets"), std::string::npos) << second->log();
  EXPECT_NE(third->log().find("accepting on 4 listening sockets"), std::string::npos) << third->log();
  std::cout << "[ upgrade ] " << report(tally);
}

TEST(Upgrade, FailsCleanlyWhenNobodyListensOnThePath) {
  TempDir dir;
  FakeUpstream up(upstream_handler);
  const auto file = dir.write("c.yaml", config("v1", 1, closed_port(), closed_port(), up.port()));
  auto r = run_program({OUTRIGGER_BINARY, "run", "-c", file, "--upgrade-from", dir.file("none.sock")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("upgrade from " + dir.file("none.sock") + ": no socket there"), std::string::npos) << r.err;

  // A socket file whose process has gone.
  const auto stale = dir.file("stale.sock");
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, stale.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ::close(fd);
  r = run_program({OUTRIGGER_BINARY, "run", "-c", file, "--upgrade-from", stale});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("nobody listens there"), std::string::npos) << r.err;

  r = run_program({OUTRIGGER_BINARY, "run", "-c", file, "--upgrade-from", dir.file("no/such/dir.sock")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("the directory " + dir.file("no/such") + " does not exist"), std::string::npos) << r.err;

  // --upgrade-socket: a stale file is replaced, a missing directory is an error.
  const auto port = closed_port(), admin = closed_port();
  Process p({"run", "-c", dir.write("d.yaml", config("v1", 1, port, admin, up.port())), "--upgrade-socket", stale}, dir,
            "p");
  ASSERT_TRUE(ready(admin)) << p.log();
  EXPECT_NE(p.log().find("removing the stale file"), std::string::npos) << p.log();
  // A second proxy may not take a socket somebody listens on.
  r = run_program({OUTRIGGER_BINARY, "run", "-c", file, "--upgrade-socket", stale});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("another process listens there"), std::string::npos) << r.err;
  r = run_program({OUTRIGGER_BINARY, "run", "-c", file, "--upgrade-socket", dir.file("no/such/dir.sock")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
  ::kill(p.pid, SIGTERM);
  EXPECT_EQ(p.wait(10s), 0);
  EXPECT_NE(::access(stale.c_str(), F_OK), 0);  // its socket file went with it
}

// Something on the path that speaks another version of the protocol.
TEST(Upgrade, FailsCleanlyOnAnotherProtocolVersion) {
  TempDir dir;
  FakeUpstream up(upstream_handler);
  const auto path = dir.file("other.sock");
  const int listener = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path.c_str());
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  std::string hello;
  std::thread other([&] {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) return;  // it never asked
    const int c = ::accept(listener, nullptr, nullptr);
    if (c < 0) return;
    char buf[4096];
    const auto n = ::recv(c, buf, sizeof buf, 0);
    if (n > 0) hello.assign(buf, static_cast<std::size_t>(n));
    const std::string answer = R"({"version":2,"type":"listeners","pid":1,"listeners":[]})";
    ::send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
    ::close(c);
  });
  const auto file = dir.write("c.yaml", config("v1", 1, closed_port(), closed_port(), up.port()));
  auto r = run_program({OUTRIGGER_BINARY, "run", "-c", file, "--upgrade-from", path});
  other.join();
  ::close(listener);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(hello.find(R"("type":"hello")"), std::string::npos) << hello;
  EXPECT_NE(hello.find(R"("version":1)"), std::string::npos) << hello;
  EXPECT_NE(r.err.find("protocol version 2, this binary speaks 1"), std::string::npos) << r.err;
}

TEST(Upgrade, ABadNewConfigOrAFailedStartLeavesTheOldProcessServing) {
  TempDir dir;
  FakeUpstream up(upstream_handler);
  const auto port = closed_port(), admin = closed_port();
  const auto socket = dir.file("upgrade.sock");
  Process old({"run", "-c", dir.write("v1.yaml", config("v1", 2, port, admin, up.port())), "--upgrade-socket", socket},
              dir, "v1");
  ASSERT_TRUE(ready(admin)) << old.log();

  // Invalid: refused before it asks anything of the running process.
  auto r =
      run_program({OUTRIGGER_BINARY, "run", "-c", dir.write("bad.yaml", "listeners: [oops"), "--upgrade-from", socket});
  EXPECT_EQ(r.exit_code, 2);
  // Valid, but it cannot start: a second listener on a port in use. It got
  // the sockets, and never said it accepts on them.
  std::uint16_t taken = 0;
  const int busy = listen_loopback(taken, 4);
  const auto yaml =
      config("v2", 2, port, admin, up.port(),
             fill("  - { name: other, address: 127.0.0.1:{TAKEN}, routes: [{ direct_response: { status: 200 } }] }\n",
                  {{"TAKEN", std::to_string(taken)}}));
  r = run_program({OUTRIGGER_BINARY, "run", "-c", dir.write("v2.yaml", yaml), "--upgrade-from", socket});
  ::close(busy);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("listener other: cannot listen"), std::string::npos) << r.err;
  EXPECT_TRUE(old.logged("did not take over"));
  // Untouched: it serves, it is ready, and it still hands over.
  auto which = http_get(port, "/which");
  ASSERT_TRUE(which);
  EXPECT_EQ(which->body(), "v1");
  EXPECT_TRUE(ready(admin));
  Process next({"run", "-c", dir.write("v3.yaml", config("v3", 2, port, admin, up.port())), "--upgrade-from", socket},
               dir, "v3");
  EXPECT_TRUE(next.logged("upgrade: took over")) << next.log();
  EXPECT_EQ(old.wait(10s), 0);
  which = http_get(port, "/which");
  ASSERT_TRUE(which);
  EXPECT_EQ(which->body(), "v3");
}

TEST(Upgrade, IsRefusedWhileTheOldProcessDrains) {
  TempDir dir;
  std::atomic<bool> release{false};
  FakeUpstream up([&](FakeUpstream::Exchange& ex) {
    eventually([&] { return release.load(); }, 10s);
    FakeUpstream::reply(ex, 200, "late");
  });
  const auto port = closed_port(), admin = closed_port();
  const auto socket = dir.file("upgrade.sock");
  Process old({"run", "-c", dir.write("v1.yaml", config("v1", 1, port, admin, up.port())), "--upgrade-socket", socket},
              dir, "v1");
  ASSERT_TRUE(ready(admin)) << old.log();
  std::optional<Response> held;
  std::thread client([&] { held = http_get(port, "/held"); });
  ASSERT_TRUE(eventually([&] { return up.requests() == 1; }));
  ::kill(old.pid, SIGTERM);
  ASSERT_TRUE(old.logged("draining"));
  auto r = run_program({OUTRIGGER_BINARY, "run", "-c", dir.write("v2.yaml", config("v2", 1, port, admin, up.port())),
                        "--upgrade-from", socket});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("the running process refused: draining"), std::string::npos) << r.err;
  release = true;
  client.join();
  ASSERT_TRUE(held);
  EXPECT_EQ(held->body(), "late");
  EXPECT_EQ(old.wait(10s), 0);
}

}  // namespace
