#include "outrigger/http/deadline.hpp"

namespace outrigger::http {

// The timer is re-armed lazily: moving a deadline later (the common case, once
// per request) only updates `deadline`; the pending wait, when it fires early,
// waits again for the rest. Only a deadline earlier than the pending wait
// touches the timer queue.
struct Deadline::State {
  explicit State(const boost::asio::any_io_executor& ex) : timer(ex) {}
  boost::asio::steady_timer timer;
  boost::asio::ip::tcp::socket* a = nullptr;
  boost::asio::ip::tcp::socket* b = nullptr;
  Clock::time_point deadline;
  bool armed = false;
  bool waiting = false;  // a wait is pending on the timer
  bool expired = false;
  bool alive = true;

  static void wait(const std::shared_ptr<State>& self) {
    self->waiting = true;
    self->timer.async_wait([st = self](const boost::system::error_code& ec) {
      st->waiting = false;
      if (!st->alive) return;
      if (ec) {  // cancelled by an earlier deadline, which waits on its own
        if (st->armed && !st->waiting) wait(st);
        return;
      }
      if (!st->armed) return;
      if (Clock::now() < st->deadline) {
        st->timer.expires_at(st->deadline);
        wait(st);
        return;
      }
      st->expired = true;
      st->armed = false;
      boost::system::error_code ignored;
      if (st->a) st->a->cancel(ignored);
      if (st->b) st->b->cancel(ignored);
    });
  }
};

Deadline::Deadline(const boost::asio::any_io_executor& ex) : state_(std::make_shared<State>(ex)) {}

Deadline::~Deadline() {
  state_->alive = false;
  state_->a = state_->b = nullptr;
  state_->timer.cancel();
}

void Deadline::arm(Clock::time_point at, boost::asio::ip::tcp::socket* a, boost::asio::ip::tcp::socket* b) {
  auto& s = *state_;
  s.a = a;
  s.b = b;
  s.expired = false;
  s.armed = true;
  s.deadline = at;
  if (s.waiting && s.timer.expiry() <= at) return;  // the pending wait comes first and will re-wait
  s.timer.expires_at(at);                            // cancels a pending wait, if any
  if (!s.waiting) State::wait(state_);
}

void Deadline::guard(boost::asio::ip::tcp::socket* a, boost::asio::ip::tcp::socket* b) {
  state_->a = a;
  state_->b = b;
}

void Deadline::disarm() {
  state_->armed = false;
  state_->a = state_->b = nullptr;
}

bool Deadline::expired() const { return state_->expired; }
Deadline::Clock::time_point Deadline::expiry() const { return state_->deadline; }

}  // namespace outrigger::http
