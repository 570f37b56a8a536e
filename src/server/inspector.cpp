#include "outrigger/server/inspector.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "outrigger/core/buffer_pool.hpp"
#include "outrigger/net/detect.hpp"
#include "outrigger/net/original_dst.hpp"
#include "outrigger/server/pipeline.hpp"

namespace outrigger::server {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using observability::DetectResult;
using observability::TunnelKind;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

static_assert(core::BufferPool::kBufferSize >= net::kMaxDetectBytes);

// A port whose clients were taken for TCP because they sent nothing in time
// is logged once in the process's life, so that a user learns why (and can
// list it in opaque_ports to skip the wait).
bool first_timeout_on(std::uint16_t port) {
  static std::array<std::atomic<std::uint64_t>, 65536 / 64> seen{};
  const std::uint64_t bit = std::uint64_t{1} << (port % 64);
  return (seen[port / 64].fetch_or(bit, std::memory_order_relaxed) & bit) == 0;
}

}  // namespace

asio::awaitable<Verdict> inspect(tcp::socket& socket, const Pipeline& pipeline) {
  using namespace asio::experimental::awaitable_operators;
  const auto& rt = pipeline.listener();
  const auto& l = *rt.config;
  auto& stats = pipeline.listener_stats();
  const auto start = Clock::now();
  Verdict v;
  boost::system::error_code ec;
  const auto local = socket.local_endpoint(ec);
  if (ec) co_return v;

  if (l.original_destination) {
    // A client that connected to the listener itself was not redirected.
    if (auto d = net::original_destination(socket.native_handle()); d && *d != local) {
      v.destination = *d;
      if (l.direction == config::Direction::inbound)
        v.destination = tcp::endpoint(rt.application_ip, l.application_address.port ? l.application_address.port : d->port());
    }
  }
  const upstream::Cluster* to_cluster = v.destination ? pipeline.snapshot()->cluster_at(*v.destination) : nullptr;
  auto found = [&](DetectResult r) {
    stats.count(r);
    stats.detection_duration.observe(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start));
  };
  // A destination no cluster knows: bytes untouched to it, or nothing.
  auto passthrough = [&] {
    if (l.passthrough == config::Passthrough::deny) {
      stats.passthrough_denied.inc();
      v.refused = "passthrough_denied";
      return;
    }
    stats.passthrough_allowed.inc();
    v.next = Verdict::Next::tcp;
  };
  auto to_tcp = [&](const upstream::Cluster* c, TunnelKind kind) {
    v.cluster = c;
    v.kind = kind;
    v.next = c ? Verdict::Next::tcp : Verdict::Next::close;
    if (!c) {
      stats.tunnel(kind).refused.inc();  // nowhere to send it
      v.refused = "no_cluster";
    }
  };
  if (l.protocol == config::Protocol::tcp) {
    if (v.destination && !to_cluster) {
      passthrough();
    } else {
      to_tcp(to_cluster ? to_cluster : rt.tcp_cluster.get(), TunnelKind::tcp);
    }
    co_return v;
  }
  if (rt.tls) {
    // This listener terminates TLS: its codec takes the handshake, and
    // another Outrigger's TCP comes by ALPN (Pipeline::tunnel).
    v.next = Verdict::Next::http;
    co_return v;
  }
  if (v.destination && !to_cluster) {
    passthrough();
    co_return v;
  }
  if (!to_cluster) to_cluster = rt.tcp_cluster.get();
  const auto port = v.destination ? v.destination->port() : local.port();
  if (std::find(l.opaque_ports.begin(), l.opaque_ports.end(), port) != l.opaque_ports.end()) {
    found(DetectResult::opaque_port);
    to_tcp(to_cluster, TunnelKind::tcp);
    co_return v;
  }

  auto buffer = core::thread_buffer_pool().get();
  std::size_t n = 0;
  asio::steady_timer timer(socket.get_executor(), start + l.detect_timeout);
  net::Detection d;
  for (;;) {
    auto r = co_await (socket.async_read_some(asio::buffer(buffer.data() + n, net::kMaxDetectBytes - n), use_tuple) ||
                       timer.async_wait(use_tuple));
    if (r.index() == 1) {
      // A server-speaks-first protocol (MySQL, SMTP), or a client slower
      // than detect_timeout: TCP, which works for either.
      v.preread.assign(buffer.data(), n);
      found(DetectResult::timeout);
      if (first_timeout_on(port))
        spdlog::info("listener {}: clients to port {} sent {} within detect_timeout ({} ms): proxied as TCP "
                     "(list the port in opaque_ports to skip the wait)",
                     l.name, port, n ? "too little" : "nothing", l.detect_timeout.count());
      to_tcp(to_cluster, TunnelKind::tcp);
      co_return v;
    }
    auto [read_ec, got] = std::get<0>(r);
    n += got;
    if (read_ec) co_return v;  // gone before saying anything we could use
    d = net::detect({buffer.data(), n});
    if (d.kind != net::Detected::need_more) break;
  }
  v.preread.assign(buffer.data(), n);
  switch (d.kind) {
    case net::Detected::http1:
    case net::Detected::http2:
      found(d.kind == net::Detected::http1 ? DetectResult::http1 : DetectResult::http2);
      v.next = Verdict::Next::http;
      break;
    case net::Detected::tls: {
      found(DetectResult::tls);
      const auto* by_name = d.sni.empty() ? nullptr : rt.cluster_for_sni(d.sni);
      v.sni = std::move(d.sni);
      to_tcp(by_name ? by_name : to_cluster, TunnelKind::tls_passthrough);
      break;
    }
    default:
      found(DetectResult::tcp);
      to_tcp(to_cluster, TunnelKind::tcp);
      break;
  }
  co_return v;
}

}  // namespace outrigger::server
