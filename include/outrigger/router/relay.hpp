// One try of an exchange through an upstream request: the request out
// (header, then the body as the client sends it, or the buffered copy), the
// response header in, and, once the router keeps that response, its body
// streamed back to the client. Each step says how it went; the router
// (router.cpp) decides what follows.
#pragma once

#include "outrigger/http/exchange.hpp"
#include "outrigger/http/upstream_request.hpp"
#include "outrigger/router/retry_state.hpp"

namespace outrigger::router {

enum class TryResult {
  ok,             // this step went through
  not_processed,  // the upstream took none of it (a stale connection) and it can be sent again: a fresh try
  failed,         // ex.error says why; nothing was sent downstream
  aborted,        // the client went away, or the response broke after it started
};

// What an upstream failure is to the client: timeout, upstream_protocol or upstream_reset.
http::ProxyError proxy_error(http::UpstreamError e);

// The exchange ends with the proxy's error `e`: its local reply (502/503/504),
// or, when the client went away, nothing but closing its connection.
http::awaitable<void> answer_failure(http::Exchange& ex, http::ProxyError e);

// Sends the request: the header, then the buffered body or the client's as it comes.
http::awaitable<TryResult> send_request(http::Exchange& ex, http::UpstreamRequest& upstream, RetryState& retry);
// Waits for the response header (upstream.response()).
http::awaitable<TryResult> receive_response(http::Exchange& ex, http::UpstreamRequest& upstream,
                                            const RetryState& retry);
// Reads the response body into `held` until it ends or `limit` is reached
// (a gRPC response whose status comes in its trailers, held back while a
// retry may still be taken). *done: the whole body is held.
http::awaitable<TryResult> hold_response(http::Exchange& ex, http::UpstreamRequest& upstream, std::size_t limit,
                                         std::string& held, bool& done);
// The response goes downstream: its header through the filters, then its
// body: what was held first (all of it when held_done), then the rest.
http::awaitable<TryResult> relay_response(http::Exchange& ex, http::UpstreamRequest& upstream,
                                          std::string_view held = {}, bool held_done = false);

}  // namespace outrigger::router
