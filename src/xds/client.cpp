#include "outrigger/xds/client.hpp"

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>
#include <random>
#include <set>

#include "envoy/service/discovery/v3/discovery.pb.h"
#include "outrigger/core/deadline_queue.hpp"
#include "outrigger/http/http2_client.hpp"
#include "outrigger/net/stream.hpp"
#include "outrigger/observability/stats.hpp"
#include "outrigger/upstream/cluster.hpp"
#include "xds/translate.hpp"

namespace outrigger::xds {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
namespace discovery = envoy::service::discovery::v3;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kClusterType = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
constexpr std::string_view kEndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
constexpr std::string_view kAdsPath = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
constexpr std::size_t kMaxMessage = 64u << 20;  // a gRPC message from the control plane (1,000 clusters: ~0.5 MB)
constexpr std::size_t kMaxErrorDetail = 4096;   // what a NACK's error_detail carries of the errors
constexpr auto kBackoffBase = std::chrono::milliseconds(500);
constexpr auto kBackoffMax = std::chrono::seconds(30);
constexpr int kInvalidArgument = 3;  // google.rpc.Code

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

std::string short_type(std::string_view type_url) {
  return type_url == kClusterType ? "clusters" : type_url == kEndpointType ? "endpoints" : std::string(type_url);
}

// What the control plane's messages are framed in: gRPC's length prefix.
class FrameReader {
 public:
  void append(const char* data, std::size_t n) { buf_.append(data, n); }
  // The next whole message, or false; `error` is set when the framing is wrong.
  bool next(std::string& message, std::string& error) {
    if (buf_.size() - at_ < 5) return compact(), false;
    const auto* p = reinterpret_cast<const unsigned char*>(buf_.data() + at_);
    if (p[0] != 0) {
      error = "a compressed gRPC message (no grpc-encoding was asked for)";
      return false;
    }
    const std::size_t n = (std::size_t{p[1]} << 24) | (std::size_t{p[2]} << 16) | (std::size_t{p[3]} << 8) | p[4];
    if (n > kMaxMessage) {
      error = "a gRPC message of " + std::to_string(n) + " bytes (the limit is 64 MiB)";
      return false;
    }
    if (buf_.size() - at_ - 5 < n) return compact(), false;
    message.assign(buf_, at_ + 5, n);
    at_ += 5 + n;
    return true;
  }

 private:
  void compact() {
    buf_.erase(0, at_);
    at_ = 0;
  }
  std::string buf_;
  std::size_t at_ = 0;
};

std::string frame(const google::protobuf::Message& m) {
  const auto body = m.SerializeAsString();
  std::string out(5, '\0');
  const auto n = static_cast<std::uint32_t>(body.size());
  out[1] = static_cast<char>(n >> 24);
  out[2] = static_cast<char>(n >> 16);
  out[3] = static_cast<char>(n >> 8);
  out[4] = static_cast<char>(n);
  return out + body;
}

std::string joined(const std::vector<std::string>& errors) {
  std::string out;
  for (const auto& e : errors) {
    if (!out.empty()) out += "; ";
    out += e;
    if (out.size() > kMaxErrorDetail) {
      out.resize(kMaxErrorDetail);
      out += "...";
      break;
    }
  }
  return out;
}

}  // namespace

struct Client::Impl : std::enable_shared_from_this<Impl> {
  // What one resource type stands at: the version and nonce of the last
  // response (accepted or not), and the version last accepted.
  struct TypeState {
    std::string accepted_version;
    std::string nonce;
  };
  struct Metrics {
    std::atomic<std::int64_t>* connected = nullptr;
    observability::PerWorker<observability::Counter>* streams = nullptr;
    std::map<std::string, observability::PerWorker<observability::Counter>*> updates, rejections;
    std::map<std::string, std::atomic<std::int64_t>*> last_update;
  };

  Impl(asio::io_context& io, config::Xds settings, Lookup lookup, Apply apply, observability::Stats& stats)
      : io(io), settings(std::move(settings)), lookup(std::move(lookup)), apply(std::move(apply)),
        backoff_timer(io), random(std::random_device{}()) {
    auto& connected = stats.gauge_family("outrigger_xds_connected",
                                         "Whether the ADS stream to the control plane is up (1) or not (0).", {});
    metrics.connected = stats.gauge(connected, {});
    auto& streams = stats.counter_family("outrigger_xds_streams_total",
                                         "ADS streams opened to the control plane (the first and each reconnection).",
                                         {});
    metrics.streams = stats.series(streams, {});
    auto& updates = stats.counter_family(
        "outrigger_xds_updates_total", "xDS responses accepted (ACKed) and published, by resource type.", {"type"});
    auto& rejections = stats.counter_family(
        "outrigger_xds_rejections_total",
        "xDS responses rejected (NACKed, the config in force kept), by resource type.", {"type"});
    auto& last = stats.gauge_family("outrigger_xds_last_update_timestamp_seconds",
                                    "When the last accepted xDS response of the type was published (Unix time).",
                                    {"type"});
    for (const std::string type : {"clusters", "endpoints"}) {
      metrics.updates[type] = stats.series(updates, {type});
      metrics.rejections[type] = stats.series(rejections, {type});
      metrics.last_update[type] = stats.gauge(last, {type});
    }
  }

  asio::io_context& io;
  config::Xds settings;
  Lookup lookup;
  Apply apply;
  Metrics metrics;
  asio::steady_timer backoff_timer;
  std::mt19937_64 random;
  bool stopped = false;
  http::Http2Client* client = nullptr;  // the connection of the stream now, if any

  // Accepted state, kept across streams.
  std::map<std::string, config::Cluster, std::less<>> clusters;                   // from CDS, by name
  std::map<std::string, std::string, std::less<>> eds_name_of;                    // EDS cluster -> its CLA's name
  std::map<std::string, std::vector<config::ClusterEndpoint>, std::less<>> endpoints;  // CLA name -> endpoints
  TypeState cds, eds;
  bool cds_taken = false, eds_taken = false;  // a response of the type was ever accepted
  Dynamic current;

  // The stream now.
  http::Http2ClientStream* stream = nullptr;
  http::RequestMessage request;
  bool node_sent = false;
  std::set<std::string> eds_subscribed;  // the names the last EDS request asked for

  static void count(observability::PerWorker<observability::Counter>* c) {
    if (c) (*c)[0].inc();  // written by the main thread only
  }

  // Connects, streams, and connects again after a break, until stopped.
  asio::awaitable<void> run() {
    auto self = shared_from_this();
    auto backoff = kBackoffBase;
    while (!stopped) {
      const bool heard = co_await session();
      metrics.connected->store(0);
      if (stopped) break;
      if (heard) backoff = kBackoffBase;  // the control plane answered: a break, not an outage
      // Full jitter (AWS's): anywhere up to the backoff, so that a fleet does not come back at once.
      std::uniform_int_distribution<long> pick(backoff.count() / 2, backoff.count());
      const auto wait = std::chrono::milliseconds(pick(random));
      spdlog::warn("xds: the stream to cluster '{}' ended; trying again in {} ms", settings.cluster, wait.count());
      backoff_timer.expires_after(wait);
      auto [waited] = co_await backoff_timer.async_wait(use_tuple);
      spdlog::debug("xds: backoff over ({})", waited ? waited.message() : "ok");
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, kBackoffMax);
    }
  }

  // One connection and its one ADS stream. True when a response came.
  asio::awaitable<bool> session() {
    using namespace asio::experimental::awaitable_operators;
    auto cluster = lookup(settings.cluster);
    if (!cluster || cluster->endpoints().empty()) {
      spdlog::warn("xds: cluster '{}' has no endpoint", settings.cluster);
      co_return false;
    }
    const auto& endpoints = cluster->endpoints();
    const auto& endpoint = endpoints[next_endpoint++ % endpoints.size()];
    spdlog::debug("xds: connecting to {} (cluster '{}')", endpoint.name, settings.cluster);
    net::Stream connection(io.get_executor());
    asio::steady_timer timer(io, cluster->config().connect_timeout);
    auto connected = co_await (connection.socket().async_connect(endpoint.address, use_tuple) ||
                               timer.async_wait(use_tuple));
    boost::system::error_code ec = connected.index() == 0 ? std::get<0>(std::get<0>(connected))
                                                          : make_error_code(asio::error::timed_out);
    const auto* tls = cluster->tls();
    if (!ec && tls) {
      const auto material = tls->current();
      auto& s = connection.start_tls(material);
      tls->prepare_client(s.native_handle(), *material);
      static constexpr unsigned char kH2[] = {2, 'h', '2'};
      SSL_set_alpn_protos(s.native_handle(), kH2, sizeof kH2);
      timer.expires_after(cluster->config().connect_timeout);
      auto shaken = co_await (s.async_handshake(net::TlsStream::client, use_tuple) || timer.async_wait(use_tuple));
      ec = shaken.index() == 0 ? std::get<0>(std::get<0>(shaken)) : make_error_code(asio::error::timed_out);
    }
    if (ec) {
      spdlog::warn("xds: connecting to {} (cluster '{}'): {}", endpoint.name, settings.cluster, ec.message());
      co_return false;
    }
    boost::system::error_code ignored;
    connection.socket().set_option(asio::ip::tcp::no_delay(true), ignored);
    spdlog::debug("xds: connected to {}", endpoint.name);
    core::DeadlineQueue deadlines(io.get_executor());
    http::Http2Client h2(connection, deadlines, cluster->config().http2, tls != nullptr, 0, nullptr, nullptr);
    client = &h2;
    // The stream ends the session; so does the connection's end.
    auto heard = co_await (talk(h2) || h2.run());
    client = nullptr;
    stream = nullptr;
    h2.orphan();
    deadlines.shutdown();
    co_return heard.index() == 0 && std::get<0>(heard);
  }

  asio::awaitable<bool> talk(http::Http2Client& h2) {
    auto s = h2.open_stream();
    stream = s.get();
    request = {};
    request.method(bhttp::verb::post);
    request.target(kAdsPath);
    request.set(bhttp::field::host, settings.cluster);
    request.set(bhttp::field::content_type, "application/grpc");
    request.set(bhttp::field::te, "trailers");
    request.set(bhttp::field::user_agent, "outrigger/" OUTRIGGER_VERSION);
    node_sent = false;
    eds_subscribed.clear();
    count(metrics.streams);
    // State of the world from scratch: what this proxy holds is said with
    // the versions, so that the control plane need not send it again.
    cds.nonce.clear();
    eds.nonce.clear();
    if (!co_await send(kClusterType, cds.accepted_version, "", {}, nullptr)) co_return false;
    if (!co_await subscribe_endpoints()) co_return false;
    if (co_await s->read_response_header() != http::UpstreamError::none) co_return false;
    const auto& head = s->response();
    if (head.result_int() != 200) {
      spdlog::warn("xds: the control plane answered HTTP {}", head.result_int());
      co_return false;
    }
    if (auto status = head.find("grpc-status"); status != head.end()) {  // trailers-only: refused
      spdlog::warn("xds: the control plane refused the stream: grpc-status {} {}", status->value(),
                   head["grpc-message"]);
      co_return false;
    }
    metrics.connected->store(1);
    spdlog::info("xds: ADS stream open to cluster '{}'", settings.cluster);
    FrameReader frames;
    std::vector<char> buf(16 * 1024);
    bool heard = false;
    for (;;) {
      const auto piece = co_await s->read_response_body(buf.data(), buf.size());
      if (piece.error != http::UpstreamError::none) break;
      frames.append(buf.data(), piece.bytes);
      std::string message, error;
      while (frames.next(message, error)) {
        discovery::DiscoveryResponse response;
        if (!response.ParseFromString(message)) {
          spdlog::warn("xds: a DiscoveryResponse that does not parse: ending the stream");
          co_return heard;
        }
        heard = true;
        if (!co_await on_response(response)) co_return heard;
      }
      if (!error.empty()) {
        spdlog::warn("xds: {}: ending the stream", error);
        co_return heard;
      }
      if (piece.done) break;
    }
    if (const auto* trailers = s->response_trailers())
      spdlog::warn("xds: the control plane ended the stream: grpc-status {} {}", (*trailers)["grpc-status"],
                   (*trailers)["grpc-message"]);
    co_return heard;
  }

  // Sends one DiscoveryRequest; false when the stream is gone.
  asio::awaitable<bool> send(std::string_view type, const std::string& version, const std::string& nonce,
                             const std::vector<std::string>& names, const std::string* error) {
    discovery::DiscoveryRequest r;
    r.set_type_url(std::string(type));
    r.set_version_info(version);
    r.set_response_nonce(nonce);
    for (const auto& n : names) r.add_resource_names(n);
    if (error) {
      r.mutable_error_detail()->set_code(kInvalidArgument);
      r.mutable_error_detail()->set_message(*error);
    }
    if (!node_sent) {  // the first request of a stream says who this is
      auto* node = r.mutable_node();
      node->set_id(settings.node_id);
      node->set_cluster(settings.node_cluster);
      for (const auto& [k, v] : settings.node_metadata)
        (*node->mutable_metadata()->mutable_fields())[k].set_string_value(v);
      node->set_user_agent_name("outrigger");
      node->set_user_agent_version(OUTRIGGER_VERSION);
      node_sent = true;
    }
    const auto bytes = frame(r);
    request.body().data = const_cast<char*>(bytes.data());  // copied by the stream before it returns
    request.body().size = bytes.size();
    request.body().more = true;
    co_return stream && co_await stream->write_request(request, nullptr) == http::UpstreamError::none;
  }

  // Asks for the endpoints of the EDS clusters now known, when they changed.
  asio::awaitable<bool> subscribe_endpoints() {
    std::set<std::string> names;
    for (const auto& [cluster, cla] : eds_name_of) names.insert(cla);
    if (names == eds_subscribed) co_return true;
    eds_subscribed = names;
    co_return co_await send(kEndpointType, eds.accepted_version, eds.nonce, {names.begin(), names.end()}, nullptr);
  }

  asio::awaitable<bool> on_response(const discovery::DiscoveryResponse& response) {
    const auto& type = response.type_url();
    if (type != kClusterType && type != kEndpointType) {
      // Not asked for: NACKed, so that the control plane's logs show why.
      const std::string error = "Outrigger did not subscribe to " + type;
      co_return co_await send(type, "", response.nonce(), {}, &error);
    }
    auto& state = type == kClusterType ? cds : eds;
    state.nonce = response.nonce();
    std::vector<std::string> errors = type == kClusterType ? take_clusters(response) : take_endpoints(response);
    const auto name = short_type(type);
    if (!errors.empty()) {
      count(metrics.rejections[name]);
      const auto detail = joined(errors);
      spdlog::error("xds: rejected {} version '{}': {}", name, response.version_info(), detail);
      co_return co_await send(type, state.accepted_version, state.nonce, names_for(type), &detail);
    }
    state.accepted_version = response.version_info();
    (type == kClusterType ? cds_taken : eds_taken) = true;
    count(metrics.updates[name]);
    metrics.last_update[name]->store(std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
    spdlog::info("xds: {} version '{}' in force", name, response.version_info());
    if (!co_await send(type, state.accepted_version, state.nonce, names_for(type), nullptr)) co_return false;
    co_return co_await subscribe_endpoints();
  }

  std::vector<std::string> names_for(std::string_view type) const {
    if (type == kClusterType) return {};  // wildcard
    return {eds_subscribed.begin(), eds_subscribed.end()};
  }

  // A CDS response: the whole set of clusters. All taken, or none.
  std::vector<std::string> take_clusters(const discovery::DiscoveryResponse& response) {
    std::vector<std::string> errors;
    std::map<std::string, config::Cluster, std::less<>> next;
    std::map<std::string, std::string, std::less<>> next_eds;
    for (const auto& any : response.resources()) {
      envoy::config::cluster::v3::Cluster c;
      if (any.type_url() != kClusterType || !any.UnpackTo(&c)) {
        errors.push_back("a resource of type '" + any.type_url() + "' in a response of type Cluster");
        continue;
      }
      std::string eds_name;
      auto translated = translate_cluster(c, &eds_name, errors);
      if (!translated) continue;
      if (next.contains(translated->name)) {
        errors.push_back("Cluster '" + translated->name + "': sent twice");
        continue;
      }
      if (!eds_name.empty()) next_eds[translated->name] = eds_name;
      next.emplace(translated->name, std::move(*translated));
    }
    if (!errors.empty()) return errors;
    auto before = std::exchange(clusters, std::move(next));
    auto before_eds = std::exchange(eds_name_of, std::move(next_eds));
    errors = publish(response.version_info(), eds.accepted_version);
    if (!errors.empty()) {
      clusters = std::move(before);
      eds_name_of = std::move(before_eds);
      return errors;
    }
    // Endpoints no cluster names any more are forgotten.
    std::erase_if(endpoints, [&](const auto& e) {
      return std::none_of(eds_name_of.begin(), eds_name_of.end(), [&](const auto& n) { return n.second == e.first; });
    });
    return {};
  }

  // An EDS response: the ClusterLoadAssignments it holds replace those of the
  // same name; the others stay as they are.
  std::vector<std::string> take_endpoints(const discovery::DiscoveryResponse& response) {
    std::vector<std::string> errors;
    std::map<std::string, std::vector<config::ClusterEndpoint>, std::less<>> updates;
    for (const auto& any : response.resources()) {
      envoy::config::endpoint::v3::ClusterLoadAssignment cla;
      if (any.type_url() != kEndpointType || !any.UnpackTo(&cla)) {
        errors.push_back("a resource of type '" + any.type_url() + "' in a response of type ClusterLoadAssignment");
        continue;
      }
      if (!eds_subscribed.contains(cla.cluster_name())) continue;  // not asked for (any more)
      if (auto e = translate_endpoints(cla, false, errors)) updates[cla.cluster_name()] = std::move(*e);
    }
    if (!errors.empty()) return errors;
    auto before = endpoints;
    for (auto& [name, e] : updates) endpoints[name] = std::move(e);
    errors = publish(cds.accepted_version, response.version_info());
    if (!errors.empty()) endpoints = std::move(before);
    return errors;
  }

  // The accepted state as config, handed to the server, with the versions it
  // will be in force under once published.
  std::vector<std::string> publish(const std::string& clusters_version, const std::string& endpoints_version) {
    if (stopped) return {"the proxy is stopping"};
    Dynamic next;
    for (const auto& [name, c] : clusters) {
      auto copy = c;
      if (auto eds = eds_name_of.find(name); eds != eds_name_of.end()) {
        auto e = endpoints.find(eds->second);
        copy.endpoints = e == endpoints.end() ? std::vector<config::ClusterEndpoint>{} : e->second;
      }
      next.clusters.push_back(std::move(copy));
    }
    next.clusters_version = clusters_version;
    next.endpoints_version = endpoints_version;
    auto errors = apply(next);
    if (errors.empty()) current = std::move(next);
    return errors;
  }

  std::size_t next_endpoint = 0;
};

Client::Client(asio::io_context& io, config::Xds settings, Lookup lookup, Apply apply, observability::Stats& stats)
    : impl_(std::make_shared<Impl>(io, std::move(settings), std::move(lookup), std::move(apply), stats)) {}

Client::~Client() { stop(); }

void Client::start() {
  asio::co_spawn(impl_->io, impl_->run(), asio::detached);
}

void Client::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->backoff_timer.cancel();
  if (impl_->client) impl_->client->close();
}

const Dynamic& Client::current() const { return impl_->current; }

bool Client::initialized() const {
  return impl_->cds_taken && (impl_->eds_name_of.empty() || impl_->eds_taken);
}

}  // namespace outrigger::xds
