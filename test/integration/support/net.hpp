// Test-side networking on loopback: a scriptable fake upstream, a raw client,
// and an in-process Outrigger. Plain blocking sockets with timeouts, so that a
// hang fails the test instead of blocking it; HTTP is parsed with Beast.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "outrigger/server/server.hpp"

namespace testing_support {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;
using namespace std::chrono_literals;

// A connected TCP socket with a receive timeout.
class Socket {
 public:
  explicit Socket(int fd = -1) : fd_(fd) {}
  ~Socket();
  Socket(Socket&& o) noexcept : fd_(o.fd_), pending_(std::move(o.pending_)) { o.fd_ = -1; }
  Socket& operator=(Socket&& o) noexcept;

  static Socket connect(std::uint16_t port, std::chrono::milliseconds timeout = 3s);
  bool valid() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  bool send(std::string_view bytes);
  // Up to `n` bytes: fewer only at a close or the timeout.
  std::string read_bytes(std::size_t n, std::chrono::milliseconds timeout = 3s);
  // No more bytes from us (a FIN); reading goes on.
  void shutdown_write();
  // Everything until the peer closes (or the timeout, or max bytes).
  std::string read_until_close(std::chrono::milliseconds timeout = 3s);
  // One complete response (Beast parser); nullopt on close/timeout/garbage.
  // `head` parses a response to HEAD (no body).
  std::optional<Response> read_response(std::chrono::milliseconds timeout = 3s, bool head = false);
  // Raw bytes up to and including the first "\r\n\r\n".
  std::string read_head(std::chrono::milliseconds timeout = 3s);
  // True when the peer has closed (EOF) within the timeout.
  bool closed_by_peer(std::chrono::milliseconds timeout = 3s);
  void close();
  void reset();  // close with RST

 private:
  int recv_some(char* buf, std::size_t n, std::chrono::milliseconds timeout);
  int fd_;
  std::string pending_;  // bytes read past the last response
};

// One response parsed with Beast from what `recv` gives (> 0: that many bytes;
// 0: the end of the stream; < 0: an error or a timeout). Bytes read past it
// are put at the front of `unread`, which `recv` should serve first.
std::optional<Response> parse_response(const std::function<int(char*, std::size_t)>& recv, std::string& unread,
                                       bool head = false);

// One request on a fresh connection.
std::optional<Response> http_get(std::uint16_t port, const std::string& target,
                                 std::vector<std::pair<std::string, std::string>> headers = {});
std::string request_text(std::string_view method, std::string_view target,
                         std::vector<std::pair<std::string, std::string>> headers = {}, std::string_view body = "");

// A fake upstream on 127.0.0.1:0 (or another loopback address and port),
// one thread per connection.
class FakeUpstream {
 public:
  struct Exchange {
    Request request;
    Socket& socket;  // the handler writes its response here (or closes it)
  };
  using Handler = std::function<void(Exchange&)>;

  explicit FakeUpstream(Handler handler = nullptr, const std::string& address = "127.0.0.1",
                        std::uint16_t port = 0);  // default handler: echo
  ~FakeUpstream();

  std::uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }       // accepted so far
  int open_connections() const { return open_.load(); }         // accepted and not closed yet
  int requests() const { return requests_.load(); }             // complete requests parsed
  Request last_request() const;
  std::string bytes_received() const;                           // everything read, all connections

  void set_handler(Handler h);
  // Replies 200 with a body naming the method, target and body size.
  static void echo(Exchange& ex);
  static void reply(Exchange& ex, int status, std::string body,
                    std::vector<std::pair<std::string, std::string>> headers = {});

 private:
  void accept_loop();
  void serve(Socket& s);

  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0}, requests_{0}, open_{0};
  mutable std::mutex mutex_;
  Handler handler_;
  Request last_;
  std::string received_;
  std::thread acceptor_;
  std::vector<std::thread> threads_;
};

// A TCP server on 127.0.0.1:0 that echoes what it reads, one thread per
// connection; on the client's end of file it shuts down its sending side
// too (a half-close answered). With a greeting it speaks first, as MySQL or
// SMTP servers do.
class EchoServer {
 public:
  explicit EchoServer(std::string greeting = "");
  ~EchoServer();
  std::uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }
  int open_connections() const { return open_.load(); }

 private:
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::string greeting_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0}, open_{0};
  std::mutex mutex_;
  std::thread acceptor_;
  std::vector<std::thread> threads_;
};

// A port nobody listens on (bound, then closed).
std::uint16_t closed_port();
// A listening socket on 127.0.0.1 and a free port (its number into `port`); throws when it cannot.
int listen_loopback(std::uint16_t& port, int backlog);
// The same on `address` (IPv4 or IPv6) at `port` (0: a free one, written back).
int listen_on(const std::string& address, std::uint16_t& port, int backlog);

// Outrigger in this process: config from YAML, run() on its own thread.
class Proxy {
 public:
  explicit Proxy(const std::string& yaml);
  ~Proxy();
  outrigger::server::Server& server() { return *server_; }
  std::uint16_t port(const std::string& listener = "ingress") const { return server_->listener_port(listener); }
  std::uint16_t admin_port() const { return server_->admin_port(); }
  // Drains and waits for run() to return; its exit code.
  int drain_and_wait(std::chrono::milliseconds timeout = 10s);
  // Waits for run() to return (something else ended it); its exit code, -2 at the deadline.
  int wait_exit(std::chrono::milliseconds timeout = 10s);

 private:
  std::unique_ptr<outrigger::server::Server> server_;
  std::thread thread_;
  std::atomic<int> exit_code_{-1};
  std::atomic<bool> done_{false};
};

outrigger::config::Config parse_config(const std::string& yaml);

// Sends `n` GETs of /x on one keep-alive connection; the statuses seen (fewer
// when the connection broke), and the bodies when asked.
std::vector<int> send_gets(std::uint16_t port, int n, std::vector<std::string>* bodies = nullptr);

// Polls `condition` every 10 ms for at most `timeout`.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 3s);

// The proxy's /metrics text, and whether it holds one exact series line prefix.
std::string metrics(Proxy& proxy);
inline bool has(const std::string& text, const std::string& series) { return text.find(series) != std::string::npos; }

// `{"listeners": ...}` style replacement of {KEY} in a template.
std::string fill(std::string text, const std::vector<std::pair<std::string, std::string>>& values);

}  // namespace testing_support
