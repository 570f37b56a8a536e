// One coroutine waits, others on the same thread wake it: a notify before
// the wait is not lost (the next wait returns at once). An Asio timer that
// never expires does the waiting; notify cancels it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace outrigger::core {

class Wakeup {
 public:
  explicit Wakeup(const boost::asio::any_io_executor& ex)
      : timer_(ex, boost::asio::steady_timer::clock_type::time_point::max()) {}

  boost::asio::awaitable<void> wait() {
    if (!pending_) {
      waiting_ = true;
      co_await timer_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
      waiting_ = false;
    }
    pending_ = false;
  }
  void notify() {
    pending_ = true;
    if (waiting_) timer_.cancel();
  }

 private:
  boost::asio::steady_timer timer_;
  bool pending_ = false;
  bool waiting_ = false;
};

}  // namespace outrigger::core
