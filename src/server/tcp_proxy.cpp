#include "outrigger/server/tcp_proxy.hpp"

#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "outrigger/net/original_dst.hpp"
#include "outrigger/net/tunnel.hpp"
#include "outrigger/server/pipeline.hpp"
#include "outrigger/upstream/cluster.hpp"
#include "outrigger/upstream/connection_pool.hpp"

namespace outrigger::server {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using observability::TunnelKind;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {
// A passthrough destination has no cluster to say how long a connect may take.
constexpr auto kPassthroughConnectTimeout = std::chrono::seconds(5);
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
}  // namespace

// The upstream side: a cluster's connection (it holds a max_connections
// slot and counts in the cluster's series), or a socket of its own to a
// passthrough destination.
class UpstreamSide {
 public:
  std::unique_ptr<upstream::UpstreamConnection> pooled;
  std::optional<net::Stream> own;
  net::Stream& stream() { return pooled ? pooled->codec.stream() : *own; }
};

TcpSession::TcpSession(net::Stream& client, std::shared_ptr<Pipeline> pipeline, Verdict verdict, std::string identity)
    : client_(client), pipeline_(std::move(pipeline)), verdict_(std::move(verdict)), identity_(std::move(identity)) {
  boost::system::error_code ec;
  if (const auto remote = client_.socket().remote_endpoint(ec); !ec) client_ip_ = remote.address().to_string();
}

TcpSession::TcpSession(tcp::socket socket, std::shared_ptr<Pipeline> pipeline, Verdict verdict,
                       http::ConnectionHost& host)
    : owned_(std::make_unique<net::Stream>(std::move(socket))),
      client_(*owned_),
      pipeline_(std::move(pipeline)),
      verdict_(std::move(verdict)),
      host_(&host) {
  boost::system::error_code ec;
  client_.socket().set_option(tcp::no_delay(true), ec);
  if (const auto remote = client_.socket().remote_endpoint(ec); !ec) client_ip_ = remote.address().to_string();
}

TcpSession::~TcpSession() {
  upstream_.reset();  // before the pipeline (and its pools) may go
  if (host_) host_->connection_closed(client_.tls() != nullptr);
}

void TcpSession::run(std::unique_ptr<TcpSession> session) {
  auto& s = *session;
  asio::co_spawn(s.client_.get_executor(), s.serve(), [owned = std::move(session)](std::exception_ptr) {});
}

void TcpSession::close_now() {
  closed_ = true;
  boost::system::error_code ec;
  client_.socket().close(ec);
  if (upstream_) upstream_->stream().socket().close(ec);
}

asio::awaitable<bool> TcpSession::terminate_tls() {
  using namespace asio::experimental::awaitable_operators;
  const auto& tls = *pipeline_->listener().tls;
  auto& stats = pipeline_->listener_stats();
  auto material = tls.context->current();
  auto& ssl = client_.start_tls(material);
  stats.tls_connections_active.add(1);
  stats.tls_connections_total.inc();
  asio::steady_timer timer(client_.get_executor(), kHandshakeTimeout);
  auto r = co_await (ssl.async_handshake(net::TlsStream::server, use_tuple) || timer.async_wait(use_tuple));
  const auto ec = r.index() == 0 ? std::get<0>(std::get<0>(r)) : make_error_code(asio::error::timed_out);
  if (ec) {
    stats.count(tls::classify_failure(ssl.native_handle(), ec));
    co_return false;
  }
  stats.tls_handshakes.inc();
  if (X509* cert = SSL_get0_peer_certificate(ssl.native_handle())) identity_ = tls::identity_of(cert);
  co_return true;
}

asio::awaitable<bool> TcpSession::connect() {
  using namespace asio::experimental::awaitable_operators;
  upstream_ = std::make_unique<UpstreamSide>();
  if (!verdict_.cluster) {
    // Passthrough: to the original destination itself, marked so that
    // interception lets it by.
    const auto& to = *verdict_.destination;
    upstream_host_ = (to.address().is_v6() ? "[" + to.address().to_string() + "]" : to.address().to_string()) + ":" +
                     std::to_string(to.port());
    auto& s = upstream_->own.emplace(client_.get_executor());
    boost::system::error_code ec;
    s.socket().open(to.protocol(), ec);
    if (!ec) net::set_mark(s.socket().native_handle(), net::upstream_mark());
    asio::steady_timer timer(client_.get_executor(), kPassthroughConnectTimeout);
    auto r = co_await (s.socket().async_connect(to, use_tuple) || timer.async_wait(use_tuple));
    ec = r.index() == 0 ? std::get<0>(std::get<0>(r)) : make_error_code(asio::error::timed_out);
    if (!ec) s.socket().set_option(tcp::no_delay(true), ec);
    if (ec) error_ = "connect_failure";
    co_return !ec;
  }
  const auto& cluster = *verdict_.cluster;
  auto* pools = pipeline_->pools(cluster.index());
  if (!pools) {
    error_ = "no_healthy_upstream";
    co_return false;
  }
  // Bytes passed through untouched keep their own TLS; opaque TCP gets the cluster's.
  const tls::Context* tls = verdict_.kind == TunnelKind::tls_passthrough ? nullptr : cluster.tls();
  const bool guarded = cluster.outlier_detector() || cluster.config().health_check;
  upstream::TriedEndpoints tried;
  for (std::size_t attempt = 0; attempt < std::min<std::size_t>(3, cluster.endpoints().size()); ++attempt) {
    const auto endpoint = pools->choose(cluster.endpoint_state(), guarded, tried);
    if (!endpoint) {
      if (error_.empty()) error_ = "no_healthy_upstream";
      break;
    }
    upstream_host_ = cluster.endpoints()[*endpoint].name;
    upstream::Acquired::Failure failure;
    pools->begin_request(*endpoint);  // least_request sees tunnels too
    // TLS of the cluster's own: to another Outrigger, which takes it for TCP by this ALPN.
    upstream_->pooled = co_await pools->connect_exclusive(*endpoint, cluster.admission(),
                                                          Clock::now() + cluster.config().connect_timeout, tls, failure,
                                                          tls ? tls::kTcpAlpnWire : std::string_view{});
    pools->end_request(*endpoint);
    if (upstream_->pooled) co_return true;
    if (failure == upstream::Acquired::Failure::overflow) {
      error_ = "overflow";
      co_return false;
    }
    if (failure == upstream::Acquired::Failure::stopped || closed_) break;
    error_ = "connect_failure";
    if (auto* outlier = cluster.outlier_detector())
      outlier->record(*endpoint, upstream::OutlierDetector::Result::gateway_failure, Clock::now());
  }
  co_return false;
}

asio::awaitable<void> TcpSession::serve() {
  const auto start = Clock::now();
  const auto start_wall = std::chrono::system_clock::now();
  const auto& rt = pipeline_->listener();
  auto& stats = pipeline_->listener_stats().tunnel(verdict_.kind);
  stats.total.inc();
  stats.active.add(1);
  std::uint64_t received = 0, sent = 0;
  bool ok = true;
  if (owned_ && rt.tls && rt.config->protocol == config::Protocol::tcp) {
    ok = co_await terminate_tls();
    if (!ok) error_ = "tls_handshake";
  }
  if (ok && pipeline_->filters().size() > 0 && !pipeline_->filters().on_connection(identity_, client_ip_)) {
    ok = false;
    error_ = "rbac_denied";
  }
  if (ok) ok = co_await connect();
  if (ok) {
    net::StreamEnd a(client_), b(upstream_->stream());
    const auto r = co_await net::relay(a, b, rt.config->tunnel_idle_timeout, verdict_.preread);
    received = r.a_to_b;
    sent = r.b_to_a;
    stats.received.inc(received);
    stats.sent.inc(sent);
    if (r.end == net::TunnelResult::End::idle_timeout) {
      stats.idle_timeouts.inc();
      error_ = "tunnel_idle_timeout";
    }
  } else {
    stats.refused.inc();
    // A reset tells the client what a refused connect would have (a plain
    // close would look like a server with nothing to say).
    boost::system::error_code ignored;
    client_.socket().set_option(asio::socket_base::linger(true, 0), ignored);
  }
  stats.active.add(-1);
  stats.duration.observe(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start));
  log(start, start_wall, received, sent);
  boost::system::error_code ec;
  client_.socket().close(ec);
}

void log_refused(const Pipeline& pipeline, const Verdict& verdict, const tcp::socket& client) {
  auto* log = pipeline.snapshot()->access_log.get();
  if (!log) return;
  boost::system::error_code ec;
  const auto remote = client.remote_endpoint(ec);
  const auto ip = ec ? std::string() : remote.address().to_string();
  std::string to;
  if (verdict.destination) to = verdict.destination->address().to_string() + ":" + std::to_string(verdict.destination->port());
  observability::AccessLogEntry e;
  e.start_time = std::chrono::system_clock::now();
  e.protocol = verdict.kind == TunnelKind::tls_passthrough ? "TLS" : "TCP";
  e.error = verdict.refused;
  e.authority = verdict.sni;
  e.upstream_host = to;  // where it was going
  e.listener = pipeline.listener().config->name;
  e.downstream_address = ip;
  log->write(e);
}

void TcpSession::log(Clock::time_point start, std::chrono::system_clock::time_point start_wall,
                     std::uint64_t received, std::uint64_t sent) {
  auto* log = pipeline_->snapshot()->access_log.get();
  if (!log) return;
  observability::AccessLogEntry e;
  e.start_time = start_wall;
  e.duration = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
  e.protocol = verdict_.kind == TunnelKind::tls_passthrough ? "TLS" : "TCP";
  e.error = error_;
  e.bytes_received = received;
  e.bytes_sent = sent;
  e.authority = verdict_.sni;
  e.upstream_host = upstream_host_;
  e.cluster = verdict_.cluster ? std::string_view(verdict_.cluster->name()) : std::string_view("passthrough");
  e.listener = pipeline_->listener().config->name;
  e.downstream_address = client_ip_;  // as HTTP lines have it
  e.peer_identity = identity_;
  log->write(e);
}

}  // namespace outrigger::server
