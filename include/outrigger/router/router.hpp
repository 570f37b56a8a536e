// The terminal step of a listener's pipeline: sends an exchange to its
// route's cluster, try by try (endpoint choice, a pooled connection, the
// request out, the response back), with the route's timeout and retry
// policy. It talks to an http::UpstreamRequest, never to a socket. Failures
// become local replies (http::local_reply_for: 502/503/504 with
// x-outrigger-error).
#pragma once

#include "outrigger/core/random.hpp"
#include "outrigger/http/exchange.hpp"
#include "outrigger/http/headers.hpp"
#include "outrigger/observability/stats.hpp"
#include "outrigger/upstream/admission.hpp"

namespace outrigger::upstream {
class Cluster;
class ClusterPools;
}  // namespace outrigger::upstream

namespace outrigger::router {

// What one worker lends to the exchanges it runs.
struct WorkerContext {
  unsigned index = 0;
  // This worker's requests in flight (overload.max_requests_per_worker); its
  // slice of observability::OverloadState, written by this worker only.
  observability::Gauge* requests_in_flight = nullptr;
  http::RequestIdGenerator request_ids{0};
  core::Random random{0};
};

// Where one exchange goes: its route, the admitted cluster, and this
// worker's pools for it.
struct Destination {
  const config::Route& route;
  const config::Listener& listener;
  const upstream::Cluster& cluster;
  upstream::ClusterPools& pools;
  upstream::Admission::Ticket& ticket;
};

http::awaitable<void> forward(http::Exchange& ex, Destination to, WorkerContext& worker);

}  // namespace outrigger::router
