// One worker thread: its own io_context, its own SO_REUSEPORT listener
// sockets, its own upstream pools and connections. It shares nothing mutable
// with other workers; the main thread talks to it only by posting to its
// io_context.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/intrusive/list.hpp>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "outrigger/http/http1_connection.hpp"
#include "outrigger/router/router.hpp"
#include "outrigger/server/pipeline.hpp"
#include "outrigger/server/snapshot.hpp"

namespace outrigger::server {

class Worker {
 public:
  explicit Worker(unsigned index);
  ~Worker();

  // Main thread, before start(): opens this worker's socket for a listener.
  // Returns the bound port (the kernel's choice when `endpoint` has port 0).
  std::uint16_t bind(const std::string& listener, const boost::asio::ip::tcp::endpoint& endpoint);

  void start(std::shared_ptr<const Snapshot> snapshot);
  // Thread-safe: new requests use `snapshot` from now on.
  void publish(std::shared_ptr<const Snapshot> snapshot);
  // Thread-safe: stop accepting, close idle connections, close the others after their response.
  void drain();
  void stop();
  // Stops the thread and drops every coroutine and snapshot reference. The
  // Server releases all workers before destroying any: a snapshot holds the
  // upstream pools of every worker, whose sockets must go before the
  // io_contexts they belong to.
  void release();

  std::size_t open_connections() const { return open_connections_.load(std::memory_order_relaxed); }
  boost::asio::any_io_executor executor() { return io_.get_executor(); }

 private:
  class Slot;
  void apply(std::shared_ptr<const Snapshot> snapshot);
  // Every 100 ms: lingering client connections give back their read
  // buffers; every second: idle upstream connections past their timeout close.
  boost::asio::awaitable<void> sweep();

  // io_context::shutdown is protected; the worker needs it to destroy its
  // suspended coroutines while the objects they point at still exist.
  struct Io : boost::asio::io_context {
    using io_context::io_context;
    void destroy_handlers() { shutdown(); }
  };

  unsigned index_;
  Io io_{1};
  router::WorkerContext context_;
  std::vector<std::unique_ptr<Slot>> slots_;
  boost::intrusive::list<http::Http1Connection, boost::intrusive::constant_time_size<false>> connections_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::atomic<std::size_t> open_connections_{0};
  bool draining_ = false;
  std::size_t lingering_ = 0;  // connections idle with a read buffer (see Http1Connection::serve)
  std::thread thread_;
};

}  // namespace outrigger::server
