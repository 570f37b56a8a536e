#include "outrigger/server/admin.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json.hpp>

#include "outrigger/router/route_table.hpp"
#include "outrigger/upstream/cluster.hpp"

namespace outrigger::server {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
namespace json = boost::json;
using asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

AdminServer::AdminServer(asio::io_context& io, const tcp::endpoint& at, observability::Stats& stats, Hooks hooks)
    : acceptor_(io), stats_(stats), hooks_(std::move(hooks)) {
  acceptor_.open(at.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.bind(at);
  acceptor_.listen();
}

AdminServer::AdminServer(asio::io_context& io, int fd, observability::Stats& stats, Hooks hooks)
    : acceptor_(io), stats_(stats), hooks_(std::move(hooks)) {
  sockaddr_storage at{};
  socklen_t len = sizeof at;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&at), &len);
  acceptor_.assign(at.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd);
}

std::uint16_t AdminServer::port() const { return acceptor_.local_endpoint().port(); }

void AdminServer::start() { asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached); }

void AdminServer::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

asio::awaitable<void> AdminServer::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
    if (!acceptor_.is_open()) co_return;
    if (ec) continue;
    asio::co_spawn(acceptor_.get_executor(), serve(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> AdminServer::serve(tcp::socket socket) {
  boost::beast::flat_buffer buffer(64 * 1024);
  for (;;) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.body_limit(64 * 1024);
    auto [ec, n] = co_await bhttp::async_read(socket, buffer, parser, use_tuple);
    if (ec) break;
    const auto& req = parser.get();
    const bool quit = router::path_of(req.target()) == "/quitquitquit";
    auto page = quit ? (req.method() == bhttp::verb::post ? Page{200, "text/plain", "draining\n"}
                                                          : Page{405, "text/plain", "POST to quit\n"})
                : (req.method() == bhttp::verb::get || req.method() == bhttp::verb::head)
                    ? this->page(req.target())
                    : Page{405, "text/plain", "method not allowed\n"};
    // The application's container asks the proxy to end with it (a Job
    // whose sidecar is a plain container): the same drain as SIGTERM.
    if (quit && req.method() == bhttp::verb::post && hooks_.quit) hooks_.quit();
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(page.status), 11};
    res.set(bhttp::field::content_type, page.content_type);
    res.body() = std::move(page.body);
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    if (req.method() == bhttp::verb::head) res.body().clear();
    auto [wec, wn] = co_await bhttp::async_write(socket, res, use_tuple);
    if (wec || !req.keep_alive()) break;
  }
  boost::system::error_code ec;
  socket.shutdown(tcp::socket::shutdown_send, ec);
}

namespace {

json::value clusters_json(const Snapshot& s, unsigned workers) {
  const auto now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  json::array out;
  for (const auto& c : s.clusters) {
    json::array eps;
    const auto& state = c->endpoint_state().data;
    for (std::size_t i = 0; i < c->endpoints().size(); ++i) {
      const auto& e = c->endpoints()[i];
      const auto until = state[i].ejected_until_ms.load();
      json::object ep{{"address", e.name},
                      {"weight", e.weight},
                      {"resolved", e.address.address().to_string() + ":" + std::to_string(e.address.port())},
                      {"health", state[i].healthy.load() ? "healthy" : "unhealthy"},
                      {"ejected", until > now_ms}};
      if (until > now_ms) ep["ejected_for_ms"] = until - now_ms;
      eps.push_back(std::move(ep));
    }
    std::uint64_t active = 0, total = 0, failures = 0, requests = 0;
    for (unsigned w = 0; w < workers; ++w) {
      const auto& st = c->stats().workers[w];
      active += static_cast<std::uint64_t>(std::max<std::int64_t>(0, st.connections_active.value()));
      total += st.connections_total.value();
      failures += st.connect_failures.value();
      requests += st.requests.value();
    }
    out.push_back(json::object{{"name", c->name()},
                               {"endpoints", std::move(eps)},
                               {"connections_active", active},
                               {"connections_total", total},
                               {"connect_failures", failures},
                               {"requests", requests},
                               {"outlier_ejections", c->stats().load.ejections_total.load()}});
    if (auto* b = c->breaker()) {
      static constexpr const char* kStates[] = {"closed", "open", "half_open"};
      out.back().as_object()["breaker"] = kStates[static_cast<int>(b->state())];
    }
  }
  return json::object{{"clusters", std::move(out)}};
}

}  // namespace

AdminServer::Page AdminServer::page(std::string_view target) const {
  const auto path = router::path_of(target);
  if (path == "/live") return {200, "text/plain", "live\n"};
  if (path == "/ready") {
    return hooks_.ready() ? Page{200, "text/plain", "ready\n"} : Page{503, "text/plain", "not ready\n"};
  }
  if (path == "/metrics" || path == "/stats/prometheus") {
    auto text = stats_.scrape();
    if (hooks_.more_metrics) text += hooks_.more_metrics();
    return {200, "text/plain; version=0.0.4; charset=utf-8", std::move(text)};
  }
  if (path == "/config_dump") {
    auto snap = hooks_.snapshot();
    return {200, "application/json", snap ? config_to_json(snap->config) + "\n" : "{}\n"};
  }
  if (path == "/clusters") {
    auto snap = hooks_.snapshot();
    return {200, "application/json", snap ? json::serialize(clusters_json(*snap, stats_.workers())) + "\n" : "{}\n"};
  }
  if (path == "/") {
    return {200, "text/plain",
            "outrigger admin\n  /ready\n  /live\n  /metrics\n  /stats/prometheus\n  /config_dump\n  /clusters\n"
            "  POST /quitquitquit\n"};
  }
  return {404, "text/plain", "not found\n"};
}

}  // namespace outrigger::server
