// The upstream side of one worker: its connection pools for every cluster of
// the configs its requests still use, and every upstream connection it has
// open (idle or busy). Made, used and destroyed on the worker's thread, so
// that a connection is always closed by the thread that owns it and its
// gauges are written by one thread only (Envoy's thread-local cluster
// manager). A config snapshot holds no pools; a worker's pipeline asks for
// the pools of its clusters here when a config arrives, and releases them
// when the last request of that config ends.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/intrusive/list.hpp>
#include <map>
#include <memory>
#include <string>

#include "outrigger/core/deadline_queue.hpp"
#include "outrigger/core/random.hpp"
#include "outrigger/upstream/connection_pool.hpp"

namespace outrigger::upstream {

class WorkerUpstreams {
 public:
  WorkerUpstreams(boost::asio::any_io_executor ex, core::DeadlineQueue& deadlines, unsigned worker, unsigned workers);
  ~WorkerUpstreams();
  WorkerUpstreams(const WorkerUpstreams&) = delete;
  WorkerUpstreams& operator=(const WorkerUpstreams&) = delete;

  // The pools for `cluster`: those already serving a cluster of that name
  // with the same endpoints and pool settings, or new ones.
  std::shared_ptr<ClusterPools> pools_for(const Cluster& cluster);
  // Idle connections past their timeout close, and the idle pools' purges run
  // (the worker's sweep); returns the connections the purges closed.
  std::size_t sweep(std::chrono::steady_clock::time_point now);
  // The worker stops: every connection closes, idle or busy, every waiter
  // wakes, and acquiring fails from now on, so that every coroutine ends.
  void shutdown();
  bool stopped() const { return stopped_; }

  const boost::asio::any_io_executor& executor() const { return ex_; }
  core::DeadlineQueue& deadlines() { return deadlines_; }
  unsigned worker() const { return worker_; }
  unsigned workers() const { return workers_; }
  std::size_t open_connections() const;  // O(n): for tests and /clusters

 private:
  friend class UpstreamConnection;
  friend class ClusterPools;
  boost::asio::any_io_executor ex_;
  core::DeadlineQueue& deadlines_;
  unsigned worker_, workers_;
  core::Random random_;
  std::map<std::string, std::weak_ptr<ClusterPools>, std::less<>> latest_;  // by cluster name
  boost::intrusive::list<ClusterPools, boost::intrusive::constant_time_size<false>> pools_;
  boost::intrusive::list<UpstreamConnection, boost::intrusive::constant_time_size<false>> connections_;
  bool stopped_ = false;
};

}  // namespace outrigger::upstream
