// Many deadlines on one Asio timer: each worker has one DeadlineQueue, and
// every route timeout and per-try timeout of that worker is a Deadline in it
// (an intrusive node, no allocation, no timer of its own). When a deadline
// passes, the queue cancels the socket the deadline guards, so the pending
// read or write fails with operation_aborted and its owner sees expired().
//
// Lazy, as HAProxy's timers are: a deadline moved later, or disarmed, stays
// where it was queued (no tree operation, no timer operation); when the queue
// reaches it, it is queued again at its new time, or dropped. A connection
// arms its route deadline once per request, and the same timeout from a
// later start is always later: per request this costs a few stores. The
// queue's one timer waits for the earliest queued deadline. Idle and
// header-read timeouts are not here: the worker's sweep enforces them (an
// idle connection holds no timer state at all).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/intrusive/set.hpp>
#include <chrono>
#include <memory>

namespace outrigger::core {

class DeadlineQueue;

class Deadline : public boost::intrusive::set_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>> {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Deadline(DeadlineQueue& queue) : queue_(&queue) {}
  ~Deadline() = default;  // auto_unlink leaves the queue
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  // At `at`, cancel `guard` (and mark this deadline expired); replaces any
  // earlier arming. Clock::time_point::max() disarms.
  void arm(Clock::time_point at, boost::asio::ip::tcp::socket* guard);
  // At `at`, call on_expiry(context) instead (an HTTP/2 stream wakes its
  // waits; cancelling the socket would end every stream of the connection).
  void arm(Clock::time_point at, void (*on_expiry)(void*), void* context);
  void disarm() {
    guard_ = nullptr;
    on_expiry_ = nullptr;
    at_ = Clock::time_point::max();  // stays queued until the queue reaches it
  }
  bool armed() const { return at_ != Clock::time_point::max(); }
  bool expired() const { return expired_; }
  Clock::time_point at() const { return at_; }

 private:
  friend class DeadlineQueue;
  struct Earlier {
    bool operator()(const Deadline& a, const Deadline& b) const { return a.key_ < b.key_; }
  };
  DeadlineQueue* queue_;
  boost::asio::ip::tcp::socket* guard_ = nullptr;
  void (*on_expiry_)(void*) = nullptr;
  void* context_ = nullptr;
  Clock::time_point at_{Clock::time_point::max()};   // when it fires; max: disarmed
  Clock::time_point key_{Clock::time_point::max()};  // where it is queued (at most at_); fixed while queued
  bool expired_ = false;
};

class DeadlineQueue {
 public:
  using Clock = Deadline::Clock;
  explicit DeadlineQueue(const boost::asio::any_io_executor& ex);
  ~DeadlineQueue();
  DeadlineQueue(const DeadlineQueue&) = delete;
  DeadlineQueue& operator=(const DeadlineQueue&) = delete;

  std::size_t size() const { return set_.size(); }  // queued, disarmed ones included; O(n): for tests
  // The worker stops: nothing fires any more and the timer waits no longer,
  // so that the io_context can run out of work.
  void shutdown();

 private:
  friend class Deadline;
  void insert(Deadline& d);
  void fire(Clock::time_point now);
  void wait_for(Clock::time_point at);

  using Set = boost::intrusive::multiset<Deadline, boost::intrusive::compare<Deadline::Earlier>,
                                         boost::intrusive::constant_time_size<false>>;
  Set set_;
  bool stopped_ = false;
  struct Timer;  // the Asio timer, shared with its pending wait
  std::shared_ptr<Timer> timer_;
};

}  // namespace outrigger::core
