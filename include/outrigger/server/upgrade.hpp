// Restart without dropping connections: a running proxy hands its listening
// sockets to the new binary over a Unix socket (`outrigger run --upgrade-from
// PATH`), SCM_RIGHTS, then drains. The sockets are passed, never bound anew:
// with SO_REUSEPORT each socket has its own accept queue, and a closed socket
// resets what is queued in it. Passed, the same sockets (and their queues)
// live on in the new process; the old one drops its copies only after the new
// one has said it accepts on them.
//
// The conversation, one JSON message a SOCK_SEQPACKET datagram, every one
// with "version": 1:
//   new -> old  {"type": "hello", "pid": P}
//   old -> new  {"type": "listeners", "pid": P, "listeners": [{"name", "address", "bound", "admin", "fds"}]}
//               or {"type": "refused", "reason": "..."}
//   old -> new  {"type": "fds", "count": K}   (K descriptors attached), until every listener's are sent
//   new -> old  {"type": "accepting"}         (its workers accept on them)
//   old -> new  {"type": "draining"}          (it stopped accepting, let go of PATH, and drains)
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/generic/seq_packet_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace outrigger::server {

inline constexpr int kUpgradeProtocolVersion = 1;

// `outrigger run --upgrade-from PATH --upgrade-socket PATH`.
struct UpgradeOptions {
  std::string from;    // take the listening sockets of the proxy listening on this Unix socket; it drains
  std::string socket;  // listen here for the next binary (empty: on `from`, if given, so that upgrades chain)
  std::chrono::milliseconds timeout{10000};  // each step of the conversation
};

// One listener's sockets as they pass from one process to the next.
struct PassedListener {
  std::string name;     // the listener's name; "admin" for the admin listener
  std::string address;  // as the config wrote it (port 0 stays 0)
  std::string bound;    // the address the sockets are bound to
  bool admin = false;
  std::vector<int> fds;  // one per worker (SO_REUSEPORT); the admin listener has one
};

// Why `path` cannot be an upgrade socket (its directory is missing, it is too
// long), or empty.
std::string upgrade_path_problem(const std::string& path);

// The new process's side, blocking, before its workers start. Throws
// std::runtime_error naming `path` and what went wrong; the old process is
// then untouched (it serves on until told that the new one accepts).
class UpgradeClient {
 public:
  UpgradeClient(std::string path, std::chrono::milliseconds timeout);
  ~UpgradeClient();  // closes the descriptors nobody took (take())
  UpgradeClient(const UpgradeClient&) = delete;
  UpgradeClient& operator=(const UpgradeClient&) = delete;

  // Connects, asks, and receives every listener's descriptors (close-on-exec).
  void receive();
  int old_pid() const { return old_pid_; }
  std::vector<PassedListener>& listeners() { return listeners_; }
  // The descriptors of `l`, now the caller's.
  std::vector<int> take(PassedListener& l);
  // Tells the old process the new one accepts, and waits for it to say it drains.
  void confirm_accepting();

 private:
  std::string path_;
  std::chrono::milliseconds timeout_;
  int fd_ = -1;
  int old_pid_ = 0;
  std::vector<PassedListener> listeners_;
};

// The running process's side: listens on `path` (0600, on the main thread's
// io_context) and hands its sockets to whoever asks, unless it is draining.
class UpgradeListener {
 public:
  struct Hooks {
    std::function<bool()> draining;                        // an upgrade is refused then
    std::function<std::vector<PassedListener>()> sockets;  // what to pass (the fds stay ours)
    std::function<void(int pid)> handed_off;               // the new process accepts: stop accepting, drain
  };
  // Binds `path`: its directory must exist; a socket file nobody listens on
  // is removed first; one somebody listens on is an error. `replace`: the
  // file is the old process's, which let go of it (a chained upgrade).
  // Throws std::runtime_error naming the path.
  UpgradeListener(boost::asio::io_context& io, std::string path, bool replace, Hooks hooks,
                  std::chrono::milliseconds timeout);
  ~UpgradeListener();  // removes the socket file if it is still ours
  void start();
  // Stops listening; `keep_file`: the next process binds the path.
  void stop(bool keep_file = false);
  const std::string& path() const { return path_; }

 private:
  boost::asio::awaitable<void> accept_loop();
  // AF_UNIX SOCK_SEQPACKET (Boost 1.81 has no local::seq_packet_protocol).
  using Protocol = boost::asio::generic::seq_packet_protocol;
  boost::asio::awaitable<void> serve(Protocol::socket socket);

  boost::asio::io_context& io_;
  std::string path_;
  Hooks hooks_;
  std::chrono::milliseconds timeout_;
  boost::asio::basic_socket_acceptor<Protocol> acceptor_;
  unsigned long inode_ = 0;  // the socket file we made, to remove only ours
  bool busy_ = false;        // one upgrade at a time
  bool handed_off_ = false;
};

}  // namespace outrigger::server
