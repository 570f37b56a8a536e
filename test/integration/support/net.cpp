#include "support/net.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/beast/http/parser.hpp>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "outrigger/config/loader.hpp"

namespace testing_support {

namespace bhttp = boost::beast::http;

Socket::~Socket() { close(); }

Socket& Socket::operator=(Socket&& o) noexcept {
  std::swap(fd_, o.fd_);
  std::swap(pending_, o.pending_);
  return *this;
}

Socket Socket::connect(std::uint16_t port, std::chrono::milliseconds) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return Socket();
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return Socket(fd);
}

bool Socket::send(std::string_view bytes) {
  while (!bytes.empty()) {
    const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

int Socket::recv_some(char* buf, std::size_t n, std::chrono::milliseconds timeout) {
  if (!pending_.empty()) {
    const auto k = std::min(n, pending_.size());
    std::memcpy(buf, pending_.data(), k);
    pending_.erase(0, k);
    return static_cast<int>(k);
  }
  pollfd p{fd_, POLLIN, 0};
  const int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (r <= 0) return -2;  // timeout
  const auto got = ::recv(fd_, buf, n, 0);
  return got < 0 ? -1 : static_cast<int>(got);
}

std::string Socket::read_bytes(std::size_t n, std::chrono::milliseconds timeout) {
  std::string out = std::move(pending_);
  pending_.clear();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[16384];
  while (out.size() < n) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    const int got = recv_some(buf, std::min(sizeof buf, n - out.size()), left);
    if (got <= 0) break;
    out.append(buf, static_cast<std::size_t>(got));
  }
  if (out.size() > n) {
    pending_ = out.substr(n);
    out.resize(n);
  }
  return out;
}

void Socket::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

std::string Socket::read_until_close(std::chrono::milliseconds timeout) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[16384];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    const int n = recv_some(buf, sizeof buf, left);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

bool Socket::closed_by_peer(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    const int n = recv_some(buf, sizeof buf, left);
    if (n == 0 || n == -1) return true;
    if (n == -2) return false;
  }
}

std::string Socket::read_head(std::chrono::milliseconds timeout) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char c;
  while (out.find("\r\n\r\n") == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || recv_some(&c, 1, left) != 1) break;
    out += c;
  }
  return out;
}

std::optional<Response> parse_response(const std::function<int(char*, std::size_t)>& recv, std::string& unread,
                                       bool head) {
  bhttp::response_parser<bhttp::string_body> p;
  p.body_limit(64 * 1024 * 1024);
  p.header_limit(1024 * 1024);
  p.skip(head);
  p.eager(true);
  std::string buf;
  char chunk[16384];
  for (;;) {
    if (!buf.empty()) {
      boost::system::error_code ec;
      const auto used = p.put(boost::asio::buffer(buf), ec);
      buf.erase(0, used);
      if (p.is_done()) {
        unread.insert(0, buf);
        return p.release();
      }
      if (ec && ec != bhttp::error::need_more) return std::nullopt;
      if (used > 0 && !buf.empty()) continue;
    }
    const int n = recv(chunk, sizeof chunk);
    if (n == 0 && p.is_header_done() && p.need_eof()) {
      boost::system::error_code ec;
      p.put_eof(ec);
      if (!ec) return p.release();
    }
    if (n <= 0) return std::nullopt;
    buf.append(chunk, static_cast<std::size_t>(n));
  }
}

std::optional<Response> Socket::read_response(std::chrono::milliseconds timeout, bool head) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  return parse_response(
      [&](char* buf, std::size_t size) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        return left.count() <= 0 ? -2 : recv_some(buf, size, left);
      },
      pending_, head);
}

void Socket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Socket::reset() {
  if (fd_ < 0) return;
  linger l{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close();
}

std::string request_text(std::string_view method, std::string_view target,
                         std::vector<std::pair<std::string, std::string>> headers, std::string_view body) {
  std::string out;
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  bool host = false, length = false;
  for (const auto& [k, v] : headers) {
    out.append(k).append(": ").append(v).append("\r\n");
    host = host || strcasecmp(k.c_str(), "host") == 0;
    length = length || strcasecmp(k.c_str(), "content-length") == 0 || strcasecmp(k.c_str(), "transfer-encoding") == 0;
  }
  if (!host) out.append("Host: test\r\n");
  if (!body.empty() && !length) out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  out.append("\r\n").append(body);
  return out;
}

std::optional<Response> http_get(std::uint16_t port, const std::string& target,
                                 std::vector<std::pair<std::string, std::string>> headers) {
  auto s = Socket::connect(port);
  if (!s.valid() || !s.send(request_text("GET", target, std::move(headers)))) return std::nullopt;
  return s.read_response();
}

int listen_loopback(std::uint16_t& port, int backlog) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, backlog) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot listen on 127.0.0.1");
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

int listen_on(const std::string& address, std::uint16_t& port, int backlog) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof *v4;
  } else if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof *v6;
  } else {
    throw std::runtime_error("not an IP address: " + address);
  }
  const int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, backlog) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot listen on " + address + ":" + std::to_string(port));
  }
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  port = ntohs(ss.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
  return fd;
}

// Accepts on listen_fd until it is shut down, each connection served by
// serve(fd) on a thread of its own (which owns the descriptor); counts them.
static void accept_each(int listen_fd, const std::atomic<bool>& stopping, std::atomic<int>& connections,
                        std::atomic<int>& open, std::mutex& mutex, std::vector<std::thread>& threads,
                        std::function<void(int)> serve) {
  for (;;) {
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stopping) return;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;
    }
    ++connections;
    ++open;
    std::lock_guard lock(mutex);
    threads.emplace_back([fd, &open, serve] {
      serve(fd);
      --open;
    });
  }
}

FakeUpstream::FakeUpstream(Handler handler, const std::string& address, std::uint16_t port)
    : port_(port), handler_(handler ? std::move(handler) : Handler(&FakeUpstream::echo)) {
  listen_fd_ = listen_on(address, port_, 1024);
  acceptor_ = std::thread([this] { accept_loop(); });
}

FakeUpstream::~FakeUpstream() {
  stopping_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  ::close(listen_fd_);
  acceptor_.join();
  for (auto& t : threads_) t.join();  // connection threads poll stopping_
}

EchoServer::EchoServer(std::string greeting) : greeting_(std::move(greeting)) {
  listen_fd_ = listen_loopback(port_, 1024);
  acceptor_ = std::thread([this] {
    accept_each(listen_fd_, stopping_, connections_, open_, mutex_, threads_, [this](int fd) {
      timeval tv{0, 100'000};  // wake up to see stopping_
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      if (!greeting_.empty()) (void)::send(fd, greeting_.data(), greeting_.size(), MSG_NOSIGNAL);
      char buf[16384];
      while (!stopping_) {
        const auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0) break;
        if (::send(fd, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) break;
      }
      ::shutdown(fd, SHUT_WR);
      ::close(fd);
    });
  });
}

EchoServer::~EchoServer() {
  stopping_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  ::close(listen_fd_);
  acceptor_.join();
  for (auto& t : threads_) t.join();
}

void FakeUpstream::accept_loop() {
  accept_each(listen_fd_, stopping_, connections_, open_, mutex_, threads_, [this](int fd) {
    Socket s(fd);
    serve(s);
  });
}

void FakeUpstream::serve(Socket& s) {
  std::string buf;
  char chunk[16384];
  while (!stopping_) {
    bhttp::request_parser<bhttp::string_body> p;
    p.body_limit(64 * 1024 * 1024);
    p.eager(true);
    bool done = false;
    while (!done) {
      if (!buf.empty()) {
        boost::system::error_code ec;
        const auto used = p.put(boost::asio::buffer(buf), ec);
        buf.erase(0, used);
        if (p.is_done()) break;
        if (ec && ec != bhttp::error::need_more) return;
        if (used > 0 && !buf.empty()) continue;
      }
      pollfd pfd{s.fd(), POLLIN, 0};
      const int ready = ::poll(&pfd, 1, 50);
      if (stopping_) return;
      if (ready <= 0) continue;
      const auto n = ::recv(s.fd(), chunk, sizeof chunk, 0);
      if (n <= 0) return;
      buf.append(chunk, static_cast<std::size_t>(n));
      std::lock_guard lock(mutex_);
      received_.append(chunk, static_cast<std::size_t>(n));
    }
    Exchange ex{p.release(), s};
    Handler h;
    {
      std::lock_guard lock(mutex_);
      last_ = ex.request;
      h = handler_;
    }
    ++requests_;
    h(ex);
    if (!s.valid()) return;
    if (!ex.request.keep_alive()) return;
  }
}

std::string FakeUpstream::bytes_received() const {
  std::lock_guard lock(mutex_);
  return received_;
}

Request FakeUpstream::last_request() const {
  std::lock_guard lock(mutex_);
  return last_;
}

void FakeUpstream::set_handler(Handler h) {
  std::lock_guard lock(mutex_);
  handler_ = std::move(h);
}

void FakeUpstream::reply(Exchange& ex, int status, std::string body,
                         std::vector<std::pair<std::string, std::string>> headers) {
  Response res{static_cast<bhttp::status>(status), 11};
  for (const auto& [k, v] : headers) res.set(k, v);
  res.body() = std::move(body);
  if (res.find(bhttp::field::transfer_encoding) == res.end()) res.prepare_payload();
  std::ostringstream out;
  out << res;
  ex.socket.send(out.str());
}

void FakeUpstream::echo(Exchange& ex) {
  reply(ex, 200,
        std::string(ex.request.method_string()) + " " + std::string(ex.request.target()) + " " +
            std::to_string(ex.request.body().size()));
}

std::uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

outrigger::config::Config parse_config(const std::string& yaml) {
  auto r = outrigger::config::load_string(yaml, "test.yaml");
  if (!r.ok()) {
    std::string all;
    for (const auto& e : r.errors) all += e.to_string() + "\n";
    throw std::runtime_error("bad test config:\n" + all + yaml);
  }
  return std::move(*r.config);
}

Proxy::Proxy(const std::string& yaml) {
  server_ = std::make_unique<outrigger::server::Server>(parse_config(yaml),
                                                        outrigger::server::ServerOptions{.handle_signals = false});
  server_->start();
  thread_ = std::thread([this] {
    exit_code_ = server_->run();
    done_ = true;
  });
}

int Proxy::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done_ && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  if (!done_) return -2;
  if (thread_.joinable()) thread_.join();
  return exit_code_;
}

int Proxy::drain_and_wait(std::chrono::milliseconds timeout) {
  if (thread_.joinable()) {
    server_->drain();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done_ && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
    if (!done_) return -2;
    thread_.join();
  }
  return exit_code_;
}

Proxy::~Proxy() {
  if (thread_.joinable()) {
    drain_and_wait();
    if (thread_.joinable()) std::terminate();  // a proxy that does not drain is a bug the test must show
  }
}

std::string fill(std::string text, const std::vector<std::pair<std::string, std::string>>& values) {
  for (const auto& [k, v] : values) {
    const std::string key = "{" + k + "}";
    for (auto pos = text.find(key); pos != std::string::npos; pos = text.find(key, pos + v.size()))
      text.replace(pos, key.size(), v);
  }
  return text;
}

std::vector<int> send_gets(std::uint16_t port, int n, std::vector<std::string>* bodies) {
  std::vector<int> out;
  auto s = Socket::connect(port);
  for (int i = 0; i < n; ++i) {
    if (!s.send(request_text("GET", "/x"))) break;
    auto res = s.read_response();
    if (!res) break;
    out.push_back(res->result_int());
    if (bodies) bodies->push_back(res->body());
  }
  return out;
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

std::string metrics(Proxy& proxy) {
  auto res = http_get(proxy.admin_port(), "/metrics");
  return res ? std::string(res->body()) : std::string();
}

}  // namespace testing_support
