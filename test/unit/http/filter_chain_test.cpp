// The chain runs filters in order until one answers, lets them suspend, and
// hands every response back through those that saw the request, last first.
#include "outrigger/http/filter.hpp"

#include <gtest/gtest.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "test_exchange.hpp"

namespace outrigger::http {
namespace {

using boost::beast::http::verb;
using testing::TestExchange;

// Appends its name to a log at each hook; answers when told to.
class Recorder final : public Filter {
 public:
  Recorder(std::string name, std::vector<std::string>& log, int answer = 0, bool wait = false)
      : name_(std::move(name)), log_(log), answer_(answer), wait_(wait) {}
  awaitable<FilterResult> on_request(Exchange&) override {
    if (wait_) {
      boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, std::chrono::milliseconds(20));
      co_await t.async_wait(boost::asio::use_awaitable);
    }
    log_.push_back(name_ + ".request");
    if (answer_) co_return LocalReply{answer_, "no\n", "denied"};
    co_return std::nullopt;
  }
  void on_response(Exchange&, ResponseHeader& h) override {
    log_.push_back(name_ + ".response");
    h.set("x-" + name_, "seen");
  }

 private:
  std::string name_;
  std::vector<std::string>& log_;
  int answer_;
  bool wait_;
};

FilterChain chain(std::vector<std::unique_ptr<Filter>> filters) { return FilterChain(std::move(filters)); }

TEST(FilterChain, RunsInOrderAndAnswersThroughTheFiltersThatSawTheRequest) {
  std::vector<std::string> log;
  std::vector<std::unique_ptr<Filter>> filters;
  filters.push_back(std::make_unique<Recorder>("a", log));
  filters.push_back(std::make_unique<Recorder>("b", log, 403, true));  // suspends, then answers
  filters.push_back(std::make_unique<Recorder>("c", log));
  auto c = chain(std::move(filters));
  TestExchange t(verb::get, "/");
  auto& ex = t.get();
  const auto reply = testing::run(c.on_request(ex));
  ASSERT_TRUE(reply);
  EXPECT_EQ(ex.filters_ran, 2u);
  testing::run(send_local_reply(ex, *reply));
  EXPECT_EQ(log, (std::vector<std::string>{"a.request", "b.request", "b.response", "a.response"}));
  EXPECT_EQ(t.down.local_status, 403);
  EXPECT_EQ(t.down.local_header["x-a"], "seen");
  EXPECT_EQ(t.down.local_header["x-c"], "");  // c never saw the request
  EXPECT_EQ(t.down.local_header["x-outrigger-error"], "denied");
  EXPECT_EQ(ex.status, 403);
  EXPECT_EQ(ex.bytes_sent, 3u);
  EXPECT_EQ(ex.error_reason, "denied");
}

TEST(FilterChain, ALocalReplyKeepsItsOwnHeaderValue) {
  TestExchange t(verb::get, "/");
  auto& ex = t.get();
  LocalReply reply{429, "slow down\n", "rate_limited"};
  reply.extra = {"retry-after", "7"};
  const config::HeaderValue configured[] = {{"content-type", "application/json"}};
  reply.headers = configured;
  testing::run(send_local_reply(ex, reply));
  EXPECT_EQ(t.down.local_header["retry-after"], "7");
  EXPECT_EQ(t.down.local_header["content-type"], "application/json");
  EXPECT_EQ(t.down.local_body, "slow down\n");
}

TEST(FilterChain, AFallbackResponseKeepsItsReasonOutOfTheHeaders) {
  TestExchange t(verb::get, "/");
  auto& ex = t.get();
  LocalReply reply{200, "[]", "circuit_open"};
  reply.reason_header = false;
  testing::run(send_local_reply(ex, reply));
  EXPECT_EQ(t.down.local_header["x-outrigger-error"], "");
  EXPECT_EQ(ex.error_reason, "circuit_open");  // for the access log
}

TEST(FilterState, HoldsOneObjectPerTypeAndDestroysThemAll) {
  static int alive = 0;
  struct Small {
    Small() { ++alive; }
    ~Small() { --alive; }
    int v = 1;
  };
  struct Large {
    Large() { ++alive; }
    ~Large() { --alive; }
    char bytes[1000];
  };
  {
    FilterState s;
    EXPECT_EQ(s.get<Small>(), nullptr);
    s.emplace<Small>().v = 7;
    s.emplace<Large>();  // too big for the inline space: on the heap
    EXPECT_EQ(s.get<Small>()->v, 7);
    s.emplace<Small>();  // replaces the first
    EXPECT_EQ(s.get<Small>()->v, 1);
    EXPECT_EQ(alive, 2);
    s.clear();
    EXPECT_EQ(alive, 0);
    EXPECT_EQ(s.get<Large>(), nullptr);
    s.emplace<Small>();
  }
  EXPECT_EQ(alive, 0);
}

}  // namespace
}  // namespace outrigger::http
