#include "outrigger/core/deadline_queue.hpp"

#include <boost/asio/steady_timer.hpp>

namespace outrigger::core {

// The timer and what its pending wait needs: a wait cancelled by an earlier
// deadline, or by the queue's end, completes later with operation_aborted and
// must find this state still there.
struct DeadlineQueue::Timer {
  explicit Timer(const boost::asio::any_io_executor& ex) : timer(ex) {}
  boost::asio::steady_timer timer;
  DeadlineQueue* queue = nullptr;  // null once the queue is gone
  bool waiting = false;            // a wait that was not cancelled is pending
  Clock::time_point waiting_for = Clock::time_point::max();
};

void Deadline::arm(Clock::time_point at, void (*on_expiry)(void*), void* context) {
  arm(at, nullptr);
  on_expiry_ = on_expiry;
  context_ = context;
}

void Deadline::arm(Clock::time_point at, boost::asio::ip::tcp::socket* guard) {
  expired_ = false;
  guard_ = guard;
  on_expiry_ = nullptr;
  at_ = at;
  if (at == Clock::time_point::max()) return;
  if (is_linked()) {
    if (key_ <= at) return;  // later than where it is queued: re-queued when the queue gets there
    unlink();
  }
  key_ = at;
  queue_->insert(*this);
}

DeadlineQueue::DeadlineQueue(const boost::asio::any_io_executor& ex) : timer_(std::make_shared<Timer>(ex)) {
  timer_->queue = this;
}

DeadlineQueue::~DeadlineQueue() {
  set_.clear();  // unlinks every deadline still armed
  timer_->queue = nullptr;
  timer_->timer.cancel();
}

void DeadlineQueue::shutdown() {
  stopped_ = true;
  set_.clear();
  timer_->timer.cancel();
}

void DeadlineQueue::insert(Deadline& d) {
  if (stopped_) return;
  set_.insert(d);
  if (!timer_->waiting || d.key_ < timer_->waiting_for) wait_for(d.key_);
}

void DeadlineQueue::wait_for(Clock::time_point at) {
  auto& t = *timer_;
  t.timer.expires_at(at);  // cancels the pending wait, if any: it completes as aborted
  t.waiting = true;
  t.waiting_for = at;
  t.timer.async_wait([state = timer_](const boost::system::error_code& ec) {
    if (ec || !state->queue) return;  // cancelled: a newer wait (or none) took over
    state->waiting = false;
    state->waiting_for = Clock::time_point::max();
    state->queue->fire(Clock::now());
  });
}

void DeadlineQueue::fire(Clock::time_point now) {
  while (!set_.empty() && set_.begin()->key_ <= now) {
    auto& d = *set_.begin();
    set_.erase(set_.begin());
    if (d.at_ == Clock::time_point::max()) continue;  // disarmed since it was queued
    if (d.at_ > now) {  // moved later since it was queued
      d.key_ = d.at_;
      set_.insert(d);
      continue;
    }
    d.expired_ = true;
    d.at_ = Clock::time_point::max();
    if (auto* s = std::exchange(d.guard_, nullptr)) {
      boost::system::error_code ignored;
      s->cancel(ignored);
    }
    if (auto* f = std::exchange(d.on_expiry_, nullptr)) f(d.context_);
  }
  if (!set_.empty()) wait_for(set_.begin()->key_);
}

}  // namespace outrigger::core
