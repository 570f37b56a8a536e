// The downstream HTTP path of the proxy, driven by fuzz input over real
// loopback sockets: the client's bytes go into a real Http1Connection (which
// hands an HTTP/2 preface to its Http2Session), every exchange runs the
// path normalisation and a real filter chain (tracing, rbac, jwt_authn,
// local_rate_limit, built by their factories from YAML), then the router's
// own relay (router/relay.hpp) sends it through a real Http1Client to an
// upstream that answers with the response bytes of the input.
//
// The input is `REQUEST BYTES` or `REQUEST BYTES` kSeparator `RESPONSE BYTES`;
// without a separator the upstream answers a plain 200.
//
// Per input: one client connection; it writes the request bytes and shuts
// its side down, reads whatever comes back, and the input is done when the
// server side has closed the connection. A connection still open after that
// is a hang (the reads stopped while nothing was left to do): the harness
// aborts, libFuzzer keeps the input.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include "fixture_keys.hpp"
#include "outrigger/config/yaml_reader.hpp"
#include "outrigger/http/filter.hpp"
#include "outrigger/http/http1_client.hpp"
#include "outrigger/http/http1_connection.hpp"
#include "outrigger/http/path.hpp"
#include "outrigger/observability/tracing.hpp"
#include "outrigger/router/relay.hpp"
#include "outrigger/router/retry_state.hpp"

namespace outrigger::fuzz {

namespace asio = boost::asio;
using asio::ip::tcp;

inline constexpr std::string_view kSeparator = "\n--response--\n";
inline constexpr std::string_view kDefaultResponse = "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n";

// The filters, as a listener's YAML gives them. The rate limit never runs
// dry within one input; rbac lets every GET and HEAD through, and the rest
// only with a JWT whose roles hold order-admin.
inline constexpr std::string_view kFilters = R"(
- type: tracing
- type: jwt_authn
  providers:
    - name: corp
      issuer: https://auth.example.com
      audiences: [orders]
      jwks_file: jwks.json
      forward_claims: { sub: x-user }
  rules:
    - { match: { prefix: /api }, requires: corp }
    - { match: { prefix: /open }, requires: corp, allow_missing: true }
- type: rbac
  mode: enforce
  roles:
    reader: [{ methods: [GET, HEAD], paths: ["/*"] }]
    writer: [{ methods: [POST, PUT, DELETE, PATCH], paths: ["/api/*"] }]
  bindings:
    - { role: reader, principals: [{ any: true }] }
    - role: writer
      principals: [{ jwt_claim: { name: roles, contains: order-admin } }]
- type: local_rate_limit
  tokens_per_second: 1000000
  burst: 1000000
)";

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "http harness: %s\n", what);
  std::abort();
}

// One accepted upstream connection: the response, then the request is read
// (and dropped) until the proxy closes.
inline asio::awaitable<void> answer(tcp::socket socket, std::string response) {
  boost::system::error_code ec;
  co_await asio::async_write(socket, asio::buffer(response), asio::redirect_error(asio::use_awaitable, ec));
  if (!ec) socket.shutdown(tcp::socket::shutdown_send, ec);
  char buf[4096];
  while (!ec) co_await socket.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
}

class Upstream {
 public:
  explicit Upstream(asio::io_context& io) : acceptor_(io, {asio::ip::address_v4::loopback(), 0}) {}
  tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }
  std::string response{kDefaultResponse};
  void start() { asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached); }

 private:
  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      asio::co_spawn(acceptor_.get_executor(), answer(std::move(socket), response), asio::detached);
    }
  }
  tcp::acceptor acceptor_;
};

// The exchange handler: what server::Pipeline and router::forward do, with
// one route, one cluster of one endpoint, and no pool.
class Handler final : public http::ExchangeHandler {
 public:
  Handler(asio::io_context& io, core::DeadlineQueue& deadlines, http::RequestIdGenerator& ids, Upstream& upstream)
      : io_(io), deadlines_(deadlines), ids_(ids), upstream_(upstream), tracer_(tracing_, spans_, 0, 1) {
    tracing_.sample_rate = 1.0;
    tracing_.propagation = {config::Propagation::b3, config::Propagation::w3c, config::Propagation::b3_single};
    route_.retry = config::RetryPolicy{};  // the body is buffered for a retry when it fits
    std::vector<config::Diagnostic> errors;
    const std::string file = "fuzz.yaml";  // the reader keeps a reference to it
    config::YamlReader yaml(file, errors);
    const auto nodes = YAML::Load(std::string(kFilters));
    std::vector<std::unique_ptr<http::Filter>> filters;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      const config::FilterSpec spec{nodes[i]["type"].as<std::string>(), std::make_shared<const YAML::Node>(nodes[i]),
                                    {}};
      auto factory = http::make_filter_factory(spec, {"filters[" + std::to_string(i) + "]", "fuzz", "inbound"}, yaml);
      if (!factory) {
        for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
        fail("the filters' YAML does not load");
      }
      filters.push_back(factory->make_filter(0));
      factories_.push_back(std::move(factory));
    }
    chain_.emplace(std::move(filters));
  }

  const http::CodecSettings& settings() const override { return settings_; }
  http::CodecSettings& mutable_settings() { return settings_; }

  http::awaitable<void> handle(http::Exchange& ex) override {
    switch (http::normalize_target(ex.request.target(), config::EscapedSlashes::keep, normalized_)) {
      case http::TargetCheck::unchanged: break;
      case http::TargetCheck::normalized: ex.request.target(normalized_); break;
      case http::TargetCheck::invalid: {
        const http::LocalReply bad{400, "bad request target\n", "bad_request"};
        co_return co_await http::send_local_reply(ex, bad);
      }
    }
    ex.tracer = &tracer_;
    ex.filters = &*chain_;
    if (auto reply = co_await chain_->on_request(ex)) co_return co_await http::send_local_reply(ex, *reply);
    if (!ex.upgrade.empty()) {  // tunnels are router/upgrade.cpp's, not fuzzed here
      const http::LocalReply no{501, "no upgrades\n", "fuzz"};
      co_return co_await http::send_local_reply(ex, no);
    }
    ex.control = http::take_control_headers(ex.request.base(), true);
    co_await forward(ex);
  }
  void complete(http::Exchange& ex) override {
    (void)ex;
    ++completed;
  }
  int completed = 0;

 private:
  // router::forward's one try, toward the fuzzed upstream.
  http::awaitable<void> forward(http::Exchange& ex) {
    auto& req = ex.request;
    const bool te_trailers = http::accepts_trailers(req.base());
    http::strip_hop_by_hop(req.base());
    if (te_trailers) req.set(boost::beast::http::field::te, "trailers");
    if (ex.request_has_body && !ex.request_content_length)
      req.set(boost::beast::http::field::transfer_encoding, "chunked");
    http::add_forwarding_headers(req.base(), ex.downstream_ip, "http", false, ids_);
    req.version(11);
    router::RetryState retry(ex, route_, std::chrono::steady_clock::time_point::max());
    if (retry.buffers(ex)) {
      if (const auto e = co_await retry.buffer_body(ex); e != http::ProxyError::none)
        co_return co_await router::answer_failure(ex, e);
    }
    if (ex.traced) {
      observability::inject(req.base(), ex.trace, tracer_.next_id(), ex.server_span_id, ex.trace.format,
                            ex.trace_headers_absent);
    }
    http::Http1Client client(io_.get_executor(), deadlines_);
    client.begin(false);
    boost::system::error_code ec;
    co_await client.stream().socket().async_connect(upstream_.endpoint(),
                                                    asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return co_await router::answer_failure(ex, http::ProxyError::connect_failure);
    client.set_deadline(std::chrono::steady_clock::now() + std::chrono::seconds(5));
    auto result = co_await router::send_request(ex, client, retry);
    if (result == router::TryResult::ok) result = co_await router::receive_response(ex, client, retry);
    if (result == router::TryResult::ok) result = co_await router::relay_response(ex, client);
    if (result == router::TryResult::ok) {
      (void)client.end();
      co_return;
    }
    if (result == router::TryResult::aborted) {
      ex.close_connection = true;
      co_return;
    }
    if (ex.error == http::ProxyError::none) ex.error = http::ProxyError::upstream_reset;
    co_await router::answer_failure(ex, ex.error);
  }

  asio::io_context& io_;
  core::DeadlineQueue& deadlines_;
  http::RequestIdGenerator& ids_;
  Upstream& upstream_;
  http::CodecSettings settings_;
  config::Route route_;
  config::Tracing tracing_;
  observability::TracingCounters counters_;
  observability::SpanQueues spans_{1, 64, counters_};
  observability::WorkerTracer tracer_;
  std::vector<std::unique_ptr<http::FilterFactory>> factories_;
  std::optional<http::FilterChain> chain_;
  std::string normalized_;
};

class Host final : public http::ConnectionHost {
 public:
  Host(asio::io_context& io, Upstream& upstream)
      : deadlines_(io.get_executor()), handler_(std::make_shared<Handler>(io, deadlines_, ids_, upstream)) {}
  std::shared_ptr<http::ExchangeHandler> current_handler() override { return handler_; }
  const http::CodecSettings& settings() override { return handler_->settings(); }
  bool draining() const override { return false; }
  http::RequestIdGenerator& request_ids() override { return ids_; }
  core::DeadlineQueue& deadlines() override { return deadlines_; }
  void connection_closed(bool) override { ++closed; }
  observability::ListenerSlice& listener_stats() override { return slice_; }
  bool begin_linger() override { return true; }
  void end_linger() override {}
  Handler& handler() { return *handler_; }
  int closed = 0;

 private:
  http::RequestIdGenerator ids_{1};
  core::DeadlineQueue deadlines_;
  std::shared_ptr<Handler> handler_;
  observability::ListenerSlice slice_;
};

// The sockets and the io_context, made once for the fuzzer's process.
class Harness {
 public:
  Harness() : upstream_(io_), host_(io_, upstream_), acceptor_(io_, {asio::ip::address_v4::loopback(), 0}) {
    upstream_.start();
  }

  Host& host() { return host_; }

  // One connection: `preface` then the input's request bytes.
  void run(std::string_view preface, std::string_view input) {
    auto request = input;
    upstream_.response = kDefaultResponse;
    if (const auto at = input.find(kSeparator); at != std::string_view::npos) {
      request = input.substr(0, at);
      upstream_.response = input.substr(at + kSeparator.size());
    }
    tcp::socket client(io_);
    connect(client);
    const int closed_before = host_.closed;
    auto connection = std::make_unique<http::Http1Connection>(accept(), host_);
    auto* conn = connection.get();
    http::Http1Connection::run(std::move(connection));
    std::string bytes(preface);
    bytes.append(request);
    // Within the socket's buffer (inputs are small); a proxy that has already
    // closed is an answer like any other.
    for (std::size_t sent = 0; sent < bytes.size();) {
      boost::system::error_code ec;
      sent += asio::write(client, asio::buffer(bytes) + sent, ec);
      if (ec && ec != asio::error::interrupted) break;
    }
    boost::system::error_code ignored;
    client.shutdown(tcp::socket::shutdown_send, ignored);
    client.non_blocking(true);
    // Until the proxy closes; idle rounds let timers and the kernel catch up.
    int idle = 0;
    while (host_.closed == closed_before) {
      drain(client);
      if (io_.stopped()) io_.restart();
      if (io_.poll() > 0) {
        idle = 0;
        continue;
      }
      if (++idle > 2000) {  // about 2 s with nothing to do, the client's side shut: a hang
        conn->close_now();
        fail("the connection stays open after the client's end");
      }
      io_.run_one_for(std::chrono::milliseconds(1));
    }
    drain(client);
    // The upstream connections see their end.
    if (io_.stopped()) io_.restart();
    io_.poll();
  }

 private:
  // libFuzzer's -timeout alarm (SIGALRM, every few seconds) interrupts a
  // blocking system call, and Asio's blocking connect and accept give up on
  // EINTR: the connect waits in the io_context instead (its epoll_wait retries),
  // the accept, which finds the connection already queued, retries.
  void connect(tcp::socket& client) {
    bool done = false;
    boost::system::error_code ec;
    client.async_connect(acceptor_.local_endpoint(), [&](boost::system::error_code e) {
      ec = e;
      done = true;
    });
    while (!done) {
      if (io_.stopped()) io_.restart();
      io_.run_one();
    }
    if (ec) fail("connect to the proxy's listener failed");
  }
  tcp::socket accept() {
    boost::system::error_code ec;
    for (;;) {
      tcp::socket socket = acceptor_.accept(ec);
      if (!ec) return socket;
      if (ec != asio::error::interrupted) fail("accept on the proxy's listener failed");
    }
  }

  static void drain(tcp::socket& client) {
    char buf[16384];
    boost::system::error_code ec;
    while (!ec) client.read_some(asio::buffer(buf), ec);
  }

  asio::io_context io_;
  Upstream upstream_;
  Host host_;
  tcp::acceptor acceptor_;
};

// The jwks.json the jwt_authn filter reads, in a directory of our own.
inline void enter_scratch_directory(const char* name) {
  auto dir = std::filesystem::temp_directory_path() / (std::string(name) + "-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "jwks.json") << kJwks;
  std::filesystem::current_path(dir);
}

}  // namespace outrigger::fuzz
