// The path of a request through one listener, on one worker:
//   route match -> filters (in config order) -> direct response | router -> cluster
// then metrics and the access log. Read Pipeline::handle to see the whole
// data path in a screen.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "outrigger/http/connection_host.hpp"
#include "outrigger/router/router.hpp"
#include "outrigger/server/snapshot.hpp"

namespace outrigger::server {

class Pipeline final : public http::ExchangeHandler {
 public:
  Pipeline(std::shared_ptr<const Snapshot> snapshot, const ListenerRuntime& listener, router::WorkerContext& worker);

  const http::Http1Settings& settings() const override { return listener_.settings; }
  const http::DownstreamTls* tls() const override { return listener_.tls ? &*listener_.tls : nullptr; }
  http::awaitable<void> handle(http::Exchange& ex) override;
  void complete(http::Exchange& ex) override;

  const std::shared_ptr<const Snapshot>& snapshot() const { return snapshot_; }

 private:
  std::shared_ptr<const Snapshot> snapshot_;  // keeps the config alive while exchanges use it
  const ListenerRuntime& listener_;
  router::WorkerContext& worker_;
  std::vector<http::Filter*> filters_;  // one per factory; filters hold no per-request state yet
  observability::ListenerSlice& listener_stats_;
  std::unique_ptr<observability::WorkerTracer> tracer_;  // null when the config does not trace

  // The authorities this worker met last on this listener, and their counters
  // (max_authorities): a hit is a short compare, a miss a locked lookup.
  struct AuthorityEntry {
    std::string name;  // lower case
    observability::Counter* counter = nullptr;
  };
  std::array<AuthorityEntry, 8> authorities_;
  std::string normalized_;  // scratch for a request target that needs normalising
  std::size_t next_authority_ = 0;
  void count_authority(std::string_view host);
  void forward_client_cert(http::Exchange& ex);
};

}  // namespace outrigger::server
