#include "outrigger/server/upgrade.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace outrigger::server {

namespace asio = boost::asio;
namespace json = boost::json;
using seq = asio::generic::seq_packet_protocol;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

constexpr std::size_t kMaxMessage = 64 * 1024;
constexpr std::size_t kFdsPerMessage = 64;  // well under the kernel's SCM_MAX_FD (253)
constexpr std::int64_t kMaxFds = 64 * 1024;

std::string errno_text() { return std::strerror(errno); }

std::string message(json::object o) {
  o["version"] = kUpgradeProtocolVersion;
  return json::serialize(o);
}

// A message's object, or an empty one with `why` set.
json::object parse_message(std::string_view text, std::string& why) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    why = "a message that is not a JSON object";
    return {};
  }
  auto& o = v.as_object();
  const auto* version = o.if_contains("version");
  if (!version || !version->is_int64() || version->as_int64() != kUpgradeProtocolVersion) {
    why = "protocol version " + (version ? json::serialize(*version) : std::string("(none)")) +
          ", this binary speaks " + std::to_string(kUpgradeProtocolVersion);
    return {};
  }
  if (!o.if_contains("type") || !o.at("type").is_string()) {
    why = "a message without a type";
    return {};
  }
  return std::move(o);
}

std::string_view type_of(const json::object& o) { return o.at("type").as_string(); }

// Sends one datagram with `fds` attached (SCM_RIGHTS); false with errno set.
bool send_with_fds(int socket, const std::string& text, const int* fds, std::size_t n) {
  iovec iov{const_cast<char*>(text.data()), text.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kFdsPerMessage)> control{};
  if (n > 0) {
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    auto* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
  }
  return ::sendmsg(socket, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
}

std::string check_path(const std::string& path) {
  if (path.size() >= sizeof(sockaddr_un::sun_path)) return "the path is longer than a Unix socket path may be";
  auto dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return "the directory " + dir.string() + " does not exist";
  return {};
}

sockaddr_un address_of(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.data(), path.size());
  return a;
}

}  // namespace

std::string upgrade_path_problem(const std::string& path) { return check_path(path); }

// ---- the new process ----

UpgradeClient::UpgradeClient(std::string path, std::chrono::milliseconds timeout)
    : path_(std::move(path)), timeout_(timeout) {}

UpgradeClient::~UpgradeClient() {
  for (auto& l : listeners_)
    for (int fd : l.fds) ::close(fd);
  if (fd_ >= 0) ::close(fd_);
}

namespace {

// One datagram before `deadline`, its descriptors appended to `fds` (close-on-exec).
json::object receive_message(int socket, std::chrono::steady_clock::time_point deadline, std::vector<int>* fds,
                             const std::string& path) {
  auto fail = [&](const std::string& why) { return std::runtime_error("upgrade from " + path + ": " + why); };
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw fail("no answer in time (is the process there an outrigger?)");
    pollfd p{socket, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw fail("poll: " + errno_text());
    if (r == 0) continue;
    break;
  }
  std::string text(kMaxMessage, '\0');
  iovec iov{text.data(), text.size()};
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kFdsPerMessage)> control{};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  const auto n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) throw fail("receive: " + errno_text());
  if (n == 0) throw fail("the old process closed the connection");
  for (auto* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const auto count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (fds) {
        fds->push_back(fd);
      } else {
        ::close(fd);
      }
    }
  }
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) throw fail("a message too large");
  text.resize(static_cast<std::size_t>(n));
  std::string why;
  auto o = parse_message(text, why);
  if (!why.empty()) throw fail(why);
  return o;
}

}  // namespace

void UpgradeClient::receive() {
  auto fail = [&](const std::string& why) { return std::runtime_error("upgrade from " + path_ + ": " + why); };
  if (auto why = check_path(path_); !why.empty()) throw fail(why);
  fd_ = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw fail("socket: " + errno_text());
  const auto a = address_of(path_);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    if (errno == ENOENT) throw fail("no socket there (was the running proxy started with --upgrade-socket?)");
    if (errno == ECONNREFUSED) throw fail("nobody listens there (the process that made it has gone)");
    throw fail("connect: " + errno_text());
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  if (!send_with_fds(fd_, message({{"type", "hello"}, {"pid", ::getpid()}}), nullptr, 0))
    throw fail("send: " + errno_text());
  auto header = receive_message(fd_, deadline, nullptr, path_);
  if (type_of(header) == "refused") {
    const auto* reason = header.if_contains("reason");
    throw fail("the running process refused: " +
               std::string(reason && reason->is_string() ? std::string_view(reason->as_string()) : "no reason"));
  }
  if (type_of(header) != "listeners") throw fail("expected the listeners, got '" + std::string(type_of(header)) + "'");
  try {
    old_pid_ = static_cast<int>(header.at("pid").to_number<std::int64_t>());
    std::int64_t total = 0;
    std::vector<std::int64_t> counts;
    for (const auto& v : header.at("listeners").as_array()) {
      const auto& o = v.as_object();
      PassedListener l;
      l.name = o.at("name").as_string();
      l.address = o.at("address").as_string();
      l.bound = o.at("bound").as_string();
      l.admin = o.at("admin").as_bool();
      counts.push_back(o.at("fds").to_number<std::int64_t>());
      if (counts.back() < 0 || (total += counts.back()) > kMaxFds) throw fail("an impossible number of sockets");
      listeners_.push_back(std::move(l));
    }
    std::vector<int> fds;
    while (static_cast<std::int64_t>(fds.size()) < total) {
      auto m = receive_message(fd_, deadline, &fds, path_);
      if (type_of(m) != "fds") {
        for (int fd : fds) ::close(fd);
        throw fail("expected sockets, got '" + std::string(type_of(m)) + "'");
      }
    }
    if (static_cast<std::int64_t>(fds.size()) != total) {
      for (int fd : fds) ::close(fd);
      throw fail("more sockets than announced");
    }
    std::size_t next = 0;
    for (std::size_t i = 0; i < listeners_.size(); ++i)
      for (std::int64_t k = 0; k < counts[i]; ++k) listeners_[i].fds.push_back(fds[next++]);
  } catch (const boost::system::system_error& e) {  // Boost.JSON: a field of the wrong type
    throw fail(std::string("a malformed listeners message: ") + e.what());
  } catch (const std::invalid_argument& e) {  // Boost.JSON's at() and as_*() on a missing or mistyped field
    throw fail(std::string("a malformed listeners message: ") + e.what());
  } catch (const std::out_of_range& e) {
    throw fail(std::string("a malformed listeners message: ") + e.what());
  }
}

std::vector<int> UpgradeClient::take(PassedListener& l) { return std::exchange(l.fds, {}); }

void UpgradeClient::confirm_accepting() {
  auto fail = [&](const std::string& why) { return std::runtime_error("upgrade from " + path_ + ": " + why); };
  if (!send_with_fds(fd_, message({{"type", "accepting"}}), nullptr, 0)) throw fail("send: " + errno_text());
  auto m = receive_message(fd_, std::chrono::steady_clock::now() + timeout_, nullptr, path_);
  if (type_of(m) != "draining") throw fail("expected 'draining', got '" + std::string(type_of(m)) + "'");
}

// ---- the running process ----

UpgradeListener::UpgradeListener(asio::io_context& io, std::string path, bool replace, Hooks hooks,
                                 std::chrono::milliseconds timeout)
    : io_(io), path_(std::move(path)), hooks_(std::move(hooks)), timeout_(timeout), acceptor_(io) {
  auto fail = [&](const std::string& why) { return std::runtime_error("upgrade socket " + path_ + ": " + why); };
  if (auto why = check_path(path_); !why.empty()) throw fail(why);
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) throw fail("the file exists and is not a socket");
    if (!replace) {
      // A stale file (its process gone) is removed; a live one is an error.
      const int probe = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
      const auto a = address_of(path_);
      const bool live = probe >= 0 && ::connect(probe, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0;
      const int why = errno;
      if (probe >= 0) ::close(probe);
      if (live || (why != ECONNREFUSED && why != ENOENT))
        throw fail("another process listens there (to take its sockets over: --upgrade-from " + path_ + ")");
      spdlog::info("upgrade socket {}: removing the stale file of a process that has gone", path_);
    }
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) throw fail("cannot remove the old file: " + errno_text());
  }
  acceptor_.open(seq(AF_UNIX, 0));
  // Owner only from the first moment: the umask applies to bind's file.
  const auto mask = ::umask(0077);
  boost::system::error_code ec;
  const auto a = address_of(path_);
  acceptor_.bind(seq::endpoint(&a, sizeof a), ec);
  ::umask(mask);
  if (ec) throw fail("bind: " + ec.message());
  ::chmod(path_.c_str(), 0600);
  acceptor_.listen(4, ec);
  if (ec) throw fail("listen: " + ec.message());
  if (::stat(path_.c_str(), &st) == 0) inode_ = st.st_ino;
  ::fcntl(acceptor_.native_handle(), F_SETFD, FD_CLOEXEC);
}

UpgradeListener::~UpgradeListener() { stop(handed_off_); }

void UpgradeListener::start() { asio::co_spawn(io_, accept_loop(), asio::detached); }

void UpgradeListener::stop(bool keep_file) {
  boost::system::error_code ec;
  if (acceptor_.is_open()) acceptor_.close(ec);
  struct stat st {};
  if (!keep_file && inode_ && ::stat(path_.c_str(), &st) == 0 && st.st_ino == inode_) ::unlink(path_.c_str());
  inode_ = 0;
}

asio::awaitable<void> UpgradeListener::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
    if (!acceptor_.is_open()) co_return;
    if (ec) continue;
    asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
  }
}

namespace {

asio::awaitable<json::object> receive_async(seq::socket& socket, std::string& why) {
  std::string text(kMaxMessage, '\0');
  asio::socket_base::message_flags flags = 0;
  auto [ec, n] = co_await socket.async_receive(asio::buffer(text), flags, use_tuple);
  if (ec || n == 0) {
    why = ec ? ec.message() : "the connection closed";
    co_return json::object{};
  }
  text.resize(n);
  co_return parse_message(text, why);
}

asio::awaitable<bool> send_async(seq::socket& socket, std::string text, const int* fds, std::size_t n) {
  for (;;) {
    if (send_with_fds(socket.native_handle(), text, fds, n)) co_return true;
    if (errno != EAGAIN && errno != EWOULDBLOCK) co_return false;
    auto [ec] = co_await socket.async_wait(seq::socket::wait_write, use_tuple);
    if (ec) co_return false;
  }
}

}  // namespace

asio::awaitable<void> UpgradeListener::serve(seq::socket accepted) {
  // Closing the socket at the deadline ends whatever the conversation waits for.
  auto owned = std::make_shared<seq::socket>(std::move(accepted));
  auto& socket = *owned;
  asio::steady_timer deadline(io_, timeout_);
  deadline.async_wait([owned](const boost::system::error_code& ec) {
    if (!ec) {
      boost::system::error_code ignored;
      owned->close(ignored);
    }
  });
  ucred peer{};
  socklen_t len = sizeof peer;
  const bool same_user = ::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0 &&
                         (peer.uid == ::getuid() || peer.uid == 0);
  std::string why;
  auto hello = co_await receive_async(socket, why);
  if (!why.empty() || type_of(hello) != "hello") {
    spdlog::warn("upgrade: a request on {} that is not an upgrade ({}); ignored", path_,
                 why.empty() ? std::string(type_of(hello)) : why);
    co_return;
  }
  const auto* pid_value = hello.if_contains("pid");
  const int pid = pid_value && pid_value->is_int64() ? static_cast<int>(pid_value->as_int64()) : 0;
  const char* refusal = !same_user          ? "another user"
                        : handed_off_       ? "already handed off"
                        : hooks_.draining() ? "draining"
                        : busy_             ? "another upgrade is in progress"
                                            : nullptr;
  if (refusal) {
    spdlog::info("upgrade: refused pid {}: {}", pid, refusal);
    auto text = message({{"type", "refused"}, {"reason", refusal}});
    co_await send_async(socket, std::move(text), nullptr, 0);
    co_return;
  }
  busy_ = true;
  const auto sockets = hooks_.sockets();
  json::array listeners;
  std::vector<int> fds;
  for (const auto& l : sockets) {
    listeners.push_back(json::object{
        {"name", l.name}, {"address", l.address}, {"bound", l.bound}, {"admin", l.admin}, {"fds", l.fds.size()}});
    fds.insert(fds.end(), l.fds.begin(), l.fds.end());
  }
  auto header = message({{"type", "listeners"}, {"pid", ::getpid()}, {"listeners", std::move(listeners)}});
  bool sent = co_await send_async(socket, std::move(header), nullptr, 0);
  for (std::size_t i = 0; sent && i < fds.size(); i += kFdsPerMessage) {
    const auto n = std::min(kFdsPerMessage, fds.size() - i);
    auto text = message({{"type", "fds"}, {"count", n}});
    sent = co_await send_async(socket, std::move(text), fds.data() + i, n);
  }
  // Until the new process says it accepts, nothing changes here: if it
  // fails, this process serves on as if it had never asked.
  json::object accepting;
  if (sent) accepting = co_await receive_async(socket, why);
  if (!sent || !why.empty() || type_of(accepting) != "accepting") {
    const std::string what = !sent ? "send failed" : !why.empty() ? why : std::string(type_of(accepting));
    spdlog::warn("upgrade: pid {} did not take over ({}); serving on", pid, what);
    busy_ = false;
    co_return;
  }
  deadline.cancel();
  // The new process accepts on the same sockets (the same queues): this
  // process may stop accepting and drop its copies. The path is the new
  // process's to bind once it hears that this one let go.
  handed_off_ = true;
  stop(true);
  hooks_.handed_off(pid);
  std::size_t listener_sockets = 0, named = 0;
  for (const auto& l : sockets) {
    if (l.admin) continue;
    listener_sockets += l.fds.size();
    ++named;
  }
  spdlog::info("upgrade: handed {} listening sockets of {} listeners{} to pid {}; draining", listener_sockets, named,
               named < sockets.size() ? " and the admin listener" : "", pid);
  auto done = message({{"type", "draining"}});
  co_await send_async(socket, std::move(done), nullptr, 0);
}

}  // namespace outrigger::server
