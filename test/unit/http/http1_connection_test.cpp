// The HTTP/1.1 codec's idle life: a read that lingers gives its buffer back,
// the sweep enforces the idle and header-read timeouts, and a connection
// serves requests whatever state it waited in.
#include "outrigger/http/http1_connection.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "outrigger/observability/stats.hpp"

namespace outrigger::http {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class Handler final : public ExchangeHandler {
 public:
  const CodecSettings& settings() const override { return settings_; }
  awaitable<void> handle(Exchange& ex) override {
    const LocalReply reply{200, "ok\n"};
    co_await send_local_reply(ex, reply);
  }
  void complete(Exchange& ex) override {
    ++completed;
    last_status = ex.status;
  }
  CodecSettings settings_;
  int completed = 0;
  int last_status = 0;
};

class Host final : public ConnectionHost {
 public:
  explicit Host(asio::io_context& io) : deadlines_(io.get_executor()) {}
  std::shared_ptr<ExchangeHandler> current_handler() override { return handler; }
  const CodecSettings& settings() override { return handler->settings(); }
  bool draining() const override { return false; }
  RequestIdGenerator& request_ids() override { return ids_; }
  core::DeadlineQueue& deadlines() override { return deadlines_; }
  void connection_closed(bool) override { ++closed; }
  observability::ListenerSlice& listener_stats() override { return slice_; }
  bool begin_linger() override {
    if (!linger_room) return false;
    ++lingering;
    return true;
  }
  void end_linger() override { --lingering; }

  std::shared_ptr<Handler> handler = std::make_shared<Handler>();
  int lingering = 0, closed = 0;
  bool linger_room = true;

 private:
  core::DeadlineQueue deadlines_;
  RequestIdGenerator ids_{1};
  observability::ListenerSlice slice_;
};

struct Connection : ::testing::Test {
  asio::io_context io;
  Host host{io};
  tcp::socket client{io};
  Http1Connection* connection = nullptr;

  void SetUp() override {
    tcp::acceptor a(io, {asio::ip::address_v4::loopback(), 0});
    client.connect(a.local_endpoint());
    auto c = std::make_unique<Http1Connection>(a.accept(), host);
    connection = c.get();
    Http1Connection::run(std::move(c));
  }
  void TearDown() override {
    if (connection) connection->close_now();  // the coroutine ends before the host it points at
    run_until([&] { return host.closed == 1; });
  }
  void run_until(const std::function<bool()>& done) {
    for (int i = 0; i < 500 && !done(); ++i) {
      if (io.stopped()) io.restart();  // it stops whenever it runs out of work
      io.run_one_for(10ms);
    }
  }
  // Sends a GET and reads the response's status line.
  std::string get() {
    asio::write(client, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: a\r\n\r\n")));
    const int before = host.handler->completed;
    run_until([&] { return host.handler->completed > before; });
    return read_head();
  }
  std::string read_head() {
    std::string head;
    char c;
    boost::system::error_code ec;
    while (head.find("\r\n\r\n") == std::string::npos && asio::read(client, asio::buffer(&c, 1), ec) == 1) head += c;
    std::string body(3, '\0');  // "ok\n"
    if (head.starts_with("HTTP/1.1 200")) asio::read(client, asio::buffer(body), ec);
    return head.substr(0, head.find("\r\n"));
  }
  bool client_sees_close() {
    run_until([&] { return host.closed == 1; });
    if (host.closed == 1) connection = nullptr;
    char buf[256];
    boost::system::error_code ec;
    while (!ec) client.read_some(asio::buffer(buf), ec);  // what is left of the last response, then the end
    return ec == asio::error::eof;
  }
};

TEST_F(Connection, ALingeringReadGivesItsBufferBackAndTheNextRequestIsServed) {
  EXPECT_EQ(get(), "HTTP/1.1 200 OK");
  run_until([&] { return host.lingering == 1; });  // idle, reading into a pooled buffer
  ASSERT_EQ(host.lingering, 1);
  connection->sweep(Clock::now() + 150ms, 100ms);  // lingered longer than the sweep allows
  run_until([&] { return host.lingering == 0; });  // now waiting for readability, holding no buffer
  EXPECT_EQ(host.lingering, 0);
  EXPECT_EQ(get(), "HTTP/1.1 200 OK");
  EXPECT_EQ(host.handler->completed, 2);
  EXPECT_EQ(host.closed, 0);
}

TEST_F(Connection, WithoutRoomToLingerItWaitsWithoutABuffer) {
  host.linger_room = false;
  EXPECT_EQ(get(), "HTTP/1.1 200 OK");
  EXPECT_EQ(get(), "HTTP/1.1 200 OK");
  EXPECT_EQ(host.lingering, 0);
}

TEST_F(Connection, TheSweepClosesItWhenIdleTooLong) {
  EXPECT_EQ(get(), "HTTP/1.1 200 OK");
  run_until([&] { return host.lingering == 1; });
  connection->sweep(Clock::now() + 30s, 100ms);  // still within the 60 s idle timeout: nothing happens...
  connection->sweep(Clock::now() + 30s, 100ms);
  io.poll();
  EXPECT_EQ(host.closed, 0);
  connection->sweep(Clock::now() + 61s, 100ms);  // ... past it, the connection closes
  EXPECT_TRUE(client_sees_close());
}

TEST_F(Connection, TheSweepAnswersASlowHeaderWith408) {
  asio::write(client, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: a\r\n")));  // not finished
  run_until([&] { return host.lingering == 0 && io.poll() == 0; });
  connection->sweep(Clock::now() + 11s, 100ms);  // past the 10 s request_headers_timeout
  run_until([&] { return host.handler->completed == 1; });
  EXPECT_EQ(read_head(), "HTTP/1.1 408 Request Timeout");
  EXPECT_EQ(host.handler->last_status, 408);
  EXPECT_TRUE(client_sees_close());
}

// Found by http1_fuzz: a prefix of the HTTP/2 preface, then the client's end,
// both there before the first read. The preface check read to the end, and the
// request reader read again after it: that read never completed, and the client
// got a 408 after the header timeout instead of a 400 at once.
TEST_F(Connection, APrefacePrefixThenTheClientsEndIsA400AtOnce) {
  host.handler->settings_.http2_enabled = true;
  asio::write(client, asio::buffer(std::string("P")));
  client.shutdown(tcp::socket::shutdown_send);
  run_until([&] { return host.handler->completed == 1; });
  EXPECT_EQ(read_head(), "HTTP/1.1 400 Bad Request");
  EXPECT_TRUE(client_sees_close());
}

}  // namespace
}  // namespace outrigger::http
