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

void Deadline::arm(Clock::time_point at, boost::asio::ip::tcp::socket* guard) {
  if (is_linked()) unlink();
  expired_ = false;
  guard_ = guard;
  at_ = at;
  if (at != Clock::time_point::max()) queue_->insert(*this);
}

void Deadline::disarm() {
  if (is_linked()) unlink();
  guard_ = nullptr;
  at_ = Clock::time_point::max();
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
  if (!timer_->waiting || d.at_ < timer_->waiting_for) wait_for(d.at_);
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
  while (!set_.empty() && set_.begin()->at_ <= now) {
    auto& d = *set_.begin();
    set_.erase(set_.begin());
    d.expired_ = true;
    d.at_ = Clock::time_point::max();
    if (auto* s = std::exchange(d.guard_, nullptr)) {
      boost::system::error_code ignored;
      s->cancel(ignored);
    }
  }
  if (!set_.empty()) wait_for(set_.begin()->at_);
}

}  // namespace outrigger::core
