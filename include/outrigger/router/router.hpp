// The terminal step of every listener: sends an exchange to its route's
// cluster and streams the response back. Failures become local replies
// through http::local_reply_for (502/503/504 with x-outrigger-error).
#pragma once

#include <span>

#include "outrigger/core/buffer_pool.hpp"
#include "outrigger/http/exchange.hpp"
#include "outrigger/http/filter.hpp"
#include "outrigger/http/headers.hpp"
#include "outrigger/router/route_table.hpp"

namespace outrigger::router {

// What one worker lends to the exchanges it runs.
struct WorkerContext {
  unsigned index = 0;
  http::RequestIdGenerator request_ids{0};
  core::Random random{0};
};

// Forwards ex to target.cluster under the route's settings; calls each
// filter's on_response before the response headers go downstream.
http::awaitable<void> forward(http::Exchange& ex, const config::Route& route, const RouteTarget& target,
                              std::span<http::Filter* const> filters, WorkerContext& worker);

// Answers ex with reply (status, x-outrigger-error, short body) if nothing was sent yet.
http::awaitable<void> reply_error(http::Exchange& ex, http::ProxyError error);

}  // namespace outrigger::router
