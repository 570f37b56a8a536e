// The path of a request through one listener, on one worker:
//   target normalisation -> route match -> filters (in config order)
//   -> no route (404) | direct response | admission (breaker, limits;
//      fallback when open) -> router -> cluster
// then metrics, the SERVER span and the access log. Read Pipeline::handle
// to see the whole data path in a screen.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "outrigger/http/connection_host.hpp"
#include "outrigger/http/filter.hpp"
#include "outrigger/router/router.hpp"
#include "outrigger/server/snapshot.hpp"
#include "outrigger/upstream/worker_upstreams.hpp"

namespace outrigger::server {

class Pipeline final : public http::ExchangeHandler, public std::enable_shared_from_this<Pipeline> {
 public:
  // On the worker's thread: makes this worker's filters and takes its pools
  // for the clusters the listener's routes name.
  Pipeline(std::shared_ptr<const Snapshot> snapshot, const ListenerRuntime& listener, router::WorkerContext& worker,
           upstream::WorkerUpstreams& upstreams);

  const http::CodecSettings& settings() const override { return listener_.settings; }
  const http::DownstreamTls* tls() const override { return listener_.tls ? &*listener_.tls : nullptr; }
  http::awaitable<void> handle(http::Exchange& ex) override;
  void complete(http::Exchange& ex) override;
  http::awaitable<void> tunnel(net::Stream& client, std::string_view identity,
                               const boost::asio::ip::tcp::endpoint* destination) override;

  const std::shared_ptr<const Snapshot>& snapshot() const { return snapshot_; }
  const ListenerRuntime& listener() const { return listener_; }
  observability::ListenerSlice& listener_stats() const { return listener_stats_; }
  // This worker's pools for a cluster of the snapshot (those the listener
  // may send to: its routes', its `cluster`, its SNI routes', and every
  // cluster on an original-destination listener), else null.
  upstream::ClusterPools* pools(std::size_t cluster_index) const { return pools_[cluster_index].get(); }
  http::FilterChain& filters() { return filters_; }
  unsigned worker_index() const { return worker_.index; }

 private:
  // The route's cluster (or its fallback), admitted; then the router.
  http::awaitable<void> proxy(http::Exchange& ex, const router::CompiledRoute& route, const router::RouteTarget& target);
  bool normalize_target(http::Exchange& ex);
  void forward_client_cert(http::Exchange& ex);
  void count_authority(std::string_view host);

  std::shared_ptr<const Snapshot> snapshot_;  // keeps the config alive while exchanges use it
  const ListenerRuntime& listener_;
  router::WorkerContext& worker_;
  http::FilterChain filters_;
  std::vector<std::shared_ptr<upstream::ClusterPools>> pools_;  // by cluster index; null for clusters not routed to
  observability::ListenerSlice& listener_stats_;
  std::unique_ptr<observability::WorkerTracer> tracer_;  // null when the config does not trace

  // The authorities this worker met last on this listener, and their counters
  // (max_authorities): a hit is a short compare, a miss a locked lookup.
  struct AuthorityEntry {
    std::string name;  // lower case
    observability::Counter* counter = nullptr;
  };
  std::array<AuthorityEntry, 8> authorities_;
  std::uint32_t max_in_flight_;  // overload.max_requests_per_worker; 0: none
  std::string normalized_;  // scratch for a request target that needs normalising
  std::size_t next_authority_ = 0;
};

}  // namespace outrigger::server
