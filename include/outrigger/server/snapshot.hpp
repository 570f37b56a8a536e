// An immutable, validated view of one config, ready for the request path:
// compiled routes, filter factories, clusters (settings, endpoints, shared
// limits), resolved stats series and the access log. Built off the hot path
// on the main thread; workers swap to a new one between requests. It holds
// no sockets: each worker keeps its own upstream pools
// (upstream::WorkerUpstreams), so whichever thread drops a snapshot last
// destroys nothing that belongs to a worker.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "outrigger/config/config.hpp"
#include "outrigger/http/filter.hpp"
#include "outrigger/http/connection_host.hpp"
#include "outrigger/observability/access_log.hpp"
#include "outrigger/observability/stats.hpp"
#include "outrigger/observability/tracing.hpp"
#include "outrigger/router/route_table.hpp"
#include "outrigger/upstream/cluster.hpp"
#include "outrigger/upstream/dns.hpp"
#include "outrigger/upstream/health_checker.hpp"

namespace outrigger::server {

struct ListenerRuntime {
  const config::Listener* config = nullptr;
  std::string direction;
  router::RouteTable routes;
  std::vector<std::unique_ptr<http::FilterFactory>> filters;
  observability::ListenerStats* stats = nullptr;
  observability::RouteStats* no_route_stats = nullptr;  // requests no route matched, and codec refusals
  http::CodecSettings settings;
  std::unique_ptr<tls::Context> tls_context;  // the listener's certificates, watched
  std::optional<http::DownstreamTls> tls;     // null: plain HTTP only
  // Original-destination listeners: for each cluster (by index), the route
  // a request takes when no configured route does and its connection was
  // going to one of that cluster's endpoints. The route configs live here.
  std::vector<config::Route> destination_configs;
  std::vector<router::CompiledRoute> destination_routes;
  // Where TLS this listener does not terminate goes, by the ClientHello's
  // server name (the config's order); null: nowhere.
  const upstream::Cluster* cluster_for_sni(std::string_view server_name) const;
  std::vector<std::pair<const config::SniRoute*, std::shared_ptr<const upstream::Cluster>>> sni_clusters;
  std::shared_ptr<const upstream::Cluster> tcp_cluster;  // the listener's `cluster`, or null
  boost::asio::ip::address application_ip;               // inbound original destination: where the application is
};

struct Snapshot {
  config::Config config;
  std::vector<std::shared_ptr<const upstream::Cluster>> clusters;
  std::vector<std::unique_ptr<ListenerRuntime>> listeners;  // config order
  std::shared_ptr<observability::AccessLog> access_log;     // null when off
  std::shared_ptr<observability::SpanQueues> spans;         // null when the config does not trace

  const ListenerRuntime* listener(std::string_view name) const;
  // The first cluster (config order) with an endpoint at `address`, or null.
  const upstream::Cluster* cluster_at(const boost::asio::ip::tcp::endpoint& address) const;
  std::vector<std::pair<boost::asio::ip::tcp::endpoint, std::size_t>> endpoint_owners;  // sorted, by cluster index
};

// What survives from one config to the next on the main thread: the health
// checkers while a cluster keeps its endpoints and checks, and the span
// queues. (Endpoint health itself is kept in observability::ClusterStats;
// upstream pools are the workers' own.)
struct KeptUpstreams {
  std::map<std::string, std::unique_ptr<upstream::HealthChecker>, std::less<>> checkers;
  std::optional<boost::asio::any_io_executor> checks_on;  // where health checks run; none: not at all
  std::shared_ptr<observability::SpanQueues> spans;       // kept while max_queue_spans stays the same
  // What the DNS clusters' names resolved to (the main thread's refresher);
  // none: they have no endpoints yet.
  const upstream::DnsTable* dns = nullptr;
};

struct BuildResult {
  std::shared_ptr<const Snapshot> snapshot;  // null on errors
  std::vector<std::string> errors;           // FILE:LINE:COLUMN: message
};

// For `workers` worker threads; with 0 the snapshot is built for validation
// only (no access log file, no health checks). A build that fails leaves no
// metric series behind (Stats::abort_build).
BuildResult build_snapshot(config::Config config, observability::Stats& stats, unsigned workers,
                           KeptUpstreams& kept);

}  // namespace outrigger::server
