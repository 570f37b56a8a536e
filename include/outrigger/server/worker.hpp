// One worker thread: its own io_context, its own SO_REUSEPORT listener
// sockets, its own client connections, upstream pools and deadline queue. It
// shares nothing mutable with other workers; the main thread talks to it
// only by posting to its io_context. Everything a worker owns is destroyed
// on its thread, or after it has stopped.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/intrusive/list.hpp>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "outrigger/core/deadline_queue.hpp"
#include "outrigger/http/http1_connection.hpp"
#include "outrigger/observability/memory_stats.hpp"
#include "outrigger/router/router.hpp"
#include "outrigger/server/pipeline.hpp"
#include "outrigger/server/snapshot.hpp"
#include "outrigger/upstream/worker_upstreams.hpp"

namespace outrigger::server {

class Worker {
 public:
  // `overload`: the process's connection count and this worker's requests
  // in flight, checked against the snapshot's limits. `memory`: this worker's
  // slice of the memory sweeps' series.
  Worker(unsigned index, unsigned workers, observability::OverloadState& overload,
         observability::MemorySlice& memory);
  ~Worker();

  // Main thread, before start(): opens this worker's socket for a listener.
  // Returns the bound port (the kernel's choice when `endpoint` has port 0).
  std::uint16_t bind(const std::string& listener, const boost::asio::ip::tcp::endpoint& endpoint);
  // Main thread, before start(): accepts for a listener on a listening
  // socket passed by the process this one replaces (server/upgrade.hpp); the
  // worker owns `fd` from now on. Returns its port.
  std::uint16_t adopt(const std::string& listener, int fd);
  // Main thread, while the listener is open: its sockets on this worker
  // (still this worker's; for passing them on).
  std::vector<int> listening_fds(const std::string& listener);

  void start(std::shared_ptr<const Snapshot> snapshot);
  // Thread-safe: new requests use `snapshot` from now on.
  void publish(std::shared_ptr<const Snapshot> snapshot);
  // Thread-safe: stop accepting, close idle connections, close the others
  // after their response; on every listener, or on the inbound ones only
  // (a sidecar's first step: the application may still call out).
  void drain(bool inbound_only = false);
  // Closes everything the worker has open, lets every coroutine end, and
  // joins the thread. Idempotent.
  void stop();

  std::size_t open_connections() const { return open_connections_.load(std::memory_order_relaxed); }
  // Thread-safe: those of the inbound (or the outbound) listeners.
  std::size_t open_connections(bool inbound) const;

 private:
  class Slot;
  void apply(std::shared_ptr<const Snapshot> snapshot);
  void shutdown();
  // Every 100 ms: connection timeouts (idle, header read, handshake), and
  // lingering client reads give back their buffers; every second: idle
  // upstream connections past their timeout close, and the pools give back
  // the blocks they did not hand out (server/memory_sweep.hpp).
  boost::asio::awaitable<void> sweep();

  unsigned index_;
  observability::OverloadState& overload_;
  observability::MemorySlice& memory_;
  // Only this thread touches its sockets: the reactor's per-socket locking
  // is off (the main thread only posts, which stays locked).
  boost::asio::io_context io_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  core::DeadlineQueue deadlines_{io_.get_executor()};
  upstream::WorkerUpstreams upstreams_;
  router::WorkerContext context_;
  std::vector<std::unique_ptr<Slot>> slots_;
  boost::intrusive::list<http::ClientConnection, boost::intrusive::constant_time_size<false>> connections_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::unique_ptr<boost::asio::steady_timer> sweep_timer_;
  std::atomic<std::size_t> open_connections_{0};
  bool stopping_ = false;
  std::size_t lingering_ = 0;  // connections idle with a read buffer (see Http1Connection::serve)
  std::thread thread_;
};

}  // namespace outrigger::server
