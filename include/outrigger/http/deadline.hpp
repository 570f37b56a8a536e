// One timer per connection that cancels the sockets it guards when it fires:
// the idle timeout, the request-header timeout and the route timeout all use
// it, so a connection owns one timer however many timeouts apply.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>

namespace outrigger::http {

class Deadline {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Deadline(const boost::asio::any_io_executor& ex);
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  // Cancels `a` (and `b`) at `at`; replaces any earlier arming.
  void arm(Clock::time_point at, boost::asio::ip::tcp::socket* a, boost::asio::ip::tcp::socket* b = nullptr);
  void arm_after(Clock::duration d, boost::asio::ip::tcp::socket* a, boost::asio::ip::tcp::socket* b = nullptr) {
    arm(Clock::now() + d, a, b);
  }
  // Keeps the same expiry but guards other sockets.
  void guard(boost::asio::ip::tcp::socket* a, boost::asio::ip::tcp::socket* b = nullptr);
  void disarm();
  bool expired() const;
  Clock::time_point expiry() const;

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with the pending wait, which may outlive *this
};

}  // namespace outrigger::http
