// An Exchange for filter unit tests: a request and a Downstream that records
// nothing (filters answer through LocalResponse, not the codec).
#pragma once

#include "outrigger/http/exchange.hpp"

namespace outrigger::http::testing {

class NullDownstream final : public Downstream {
 public:
  awaitable<BodyRead> read_body(char*, std::size_t) override { co_return BodyRead{{}, 0, true}; }
  bool request_body_done() const override { return true; }
  awaitable<error_code> write_response(ResponseMessage&) override { co_return error_code{}; }
  bool response_started() const override { return false; }
  awaitable<error_code> send_local_reply(int, std::string_view, std::string_view, std::string_view,
                                         std::span<const config::HeaderValue>) override {
    co_return error_code{};
  }
  void arm_deadline(std::chrono::steady_clock::time_point, boost::asio::ip::tcp::socket*) override {}
  void disarm_deadline() override {}
  bool deadline_expired() const override { return false; }
};

// A request `method target` from `ip`, as an exchange.
struct TestExchange {
  TestExchange(boost::beast::http::verb method, std::string_view target, std::string_view ip = "10.1.2.3")
      : ip_(ip) {
    request.method(method);
    request.target(target);
    request.version(11);
    request.set(boost::beast::http::field::host, "example");
  }
  Exchange& get() {
    if (!ex) ex.emplace(request, down, std::chrono::steady_clock::now(), std::chrono::system_clock::now(), ip_);
    return *ex;
  }
  RequestMessage request;
  NullDownstream down;
  std::string ip_;
  std::optional<Exchange> ex;
};

}  // namespace outrigger::http::testing
