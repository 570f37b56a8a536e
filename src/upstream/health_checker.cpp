#include "outrigger/upstream/health_checker.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace outrigger::upstream {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

struct HealthChecker::Impl {
  asio::any_io_executor ex;
  std::string cluster;
  config::HealthCheck config;
  std::vector<Endpoint> endpoints;
  std::shared_ptr<observability::EndpointSet> state;
  std::shared_ptr<tls::Context> tls;
  std::vector<std::unique_ptr<asio::cancellation_signal>> stop;  // one per endpoint loop
  bool stopped = false;
};

namespace {

// The GET of a check on a connected (plain or TLS) stream: true on a 2xx.
template <class Stream>
asio::awaitable<bool> get_ok(Stream& stream, const HealthChecker::Impl& impl) {
  bhttp::request<bhttp::empty_body> req{bhttp::verb::get, impl.config.path, 11};
  req.set(bhttp::field::host, impl.config.host.empty() ? impl.cluster : impl.config.host);
  req.set(bhttp::field::user_agent, "outrigger-health-check");
  req.set(bhttp::field::connection, "close");
  auto [wec, wn] = co_await bhttp::async_write(stream, req, use_tuple);
  if (wec) co_return false;
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64 * 1024);
  auto [rec, rn] = co_await bhttp::async_read(stream, buffer, parser, use_tuple);
  if (rec) co_return false;
  const int status = parser.get().result_int();
  co_return status >= 200 && status < 300;
}

// One check: true when the endpoint answered 2xx within the timeout.
asio::awaitable<bool> check_once(std::shared_ptr<HealthChecker::Impl> impl, std::size_t i) {
  beast::tcp_stream stream(impl->ex);
  stream.expires_after(impl->config.timeout);  // covers the TLS handshake too
  auto [cec] = co_await stream.async_connect(impl->endpoints[i].address, use_tuple);
  if (cec) co_return false;
  if (!impl->tls) co_return co_await get_ok(stream, *impl);
  const auto material = impl->tls->current();
  asio::ssl::stream<beast::tcp_stream&> secure(stream, *material->context);
  impl->tls->prepare_client(secure.native_handle(), *material);
  // The check speaks HTTP/1.1, whatever the cluster's ALPN offers its requests.
  static constexpr unsigned char kHttp11[] = "\x08http/1.1";
  SSL_set_alpn_protos(secure.native_handle(), kHttp11, sizeof kHttp11 - 1);
  auto [hec] = co_await secure.async_handshake(asio::ssl::stream_base::client, use_tuple);
  if (hec) co_return false;
  co_return co_await get_ok(secure, *impl);
}

asio::awaitable<void> check_loop(std::shared_ptr<HealthChecker::Impl> impl, std::size_t i) {
  auto& data = impl->state->data[i];
  const auto& name = impl->endpoints[i].name;
  std::uint32_t passes = 0, failures = 0;
  asio::steady_timer timer(impl->ex);
  while (!impl->stopped) {
    const bool ok = co_await check_once(impl, i);
    if (impl->stopped) break;
    if (ok) {
      failures = 0;
      if (++passes >= impl->config.healthy_threshold && !data.healthy.load()) {
        data.healthy.store(true);
        spdlog::info("cluster {}: endpoint {} is healthy again", impl->cluster, name);
      }
    } else {
      passes = 0;
      if (++failures >= impl->config.unhealthy_threshold && data.healthy.load()) {
        data.healthy.store(false);
        spdlog::warn("cluster {}: endpoint {} failed {} health checks: unhealthy", impl->cluster, name, failures);
      }
    }
    timer.expires_after(impl->config.interval);
    auto [ec] = co_await timer.async_wait(use_tuple);
    if (ec) break;
  }
}

}  // namespace

HealthChecker::HealthChecker(asio::any_io_executor ex, const config::Cluster& cluster,
                             const std::vector<Endpoint>& endpoints, std::shared_ptr<observability::EndpointSet> state,
                             std::shared_ptr<tls::Context> tls)
    : impl_(std::make_shared<Impl>()) {
  impl_->tls = std::move(tls);
  impl_->ex = std::move(ex);
  impl_->cluster = cluster.name;
  impl_->config = *cluster.health_check;
  impl_->endpoints = endpoints;
  impl_->state = std::move(state);
}

HealthChecker::~HealthChecker() {
  impl_->stopped = true;
  for (auto& s : impl_->stop) s->emit(asio::cancellation_type::terminal);
  for (auto& d : impl_->state->data) d.healthy.store(true);
}

void HealthChecker::start() {
  for (std::size_t i = 0; i < impl_->endpoints.size(); ++i) {
    impl_->stop.push_back(std::make_unique<asio::cancellation_signal>());
    asio::co_spawn(impl_->ex, check_loop(impl_, i), asio::bind_cancellation_slot(impl_->stop.back()->slot(), asio::detached));
  }
}

void HealthChecker::use_tls(std::shared_ptr<tls::Context> tls) { impl_->tls = std::move(tls); }

bool HealthChecker::serves(const config::HealthCheck& config, const observability::EndpointSet* state,
                           const std::optional<config::Tls>& tls) const {
  const bool same_tls = impl_->tls ? tls && impl_->tls->settings() == *tls : !tls;
  return impl_->config == config && impl_->state.get() == state && same_tls;
}

}  // namespace outrigger::upstream
