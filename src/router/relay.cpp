#include "outrigger/router/relay.hpp"

#include "outrigger/core/buffer_pool.hpp"
#include "outrigger/http/filter.hpp"
#include "outrigger/http/grpc.hpp"

namespace outrigger::router {

using http::ProxyError;
using http::StreamError;
using http::UpstreamError;

ProxyError proxy_error(UpstreamError e) {
  switch (e) {
    case UpstreamError::timeout: return ProxyError::timeout;
    case UpstreamError::protocol: return ProxyError::upstream_protocol;
    case UpstreamError::none:
    case UpstreamError::not_processed:
    case UpstreamError::reset: break;
  }
  return ProxyError::upstream_reset;
}

namespace {

// An upstream failure before anything went downstream.
TryResult failed(http::Exchange& ex, UpstreamError e, bool resendable) {
  if (e == UpstreamError::not_processed && resendable) return TryResult::not_processed;
  ex.error = proxy_error(e);
  return TryResult::failed;
}

// The client's side failed.
TryResult downstream_failed(http::Exchange& ex, StreamError e) {
  ex.error = e == StreamError::timeout ? ProxyError::timeout : ProxyError::downstream_reset;
  return e == StreamError::timeout && !ex.downstream.response_started() ? TryResult::failed : TryResult::aborted;
}

}  // namespace

http::awaitable<TryResult> send_request(http::Exchange& ex, http::UpstreamRequest& upstream, RetryState& retry) {
  auto& req = ex.request;
  std::optional<core::BufferPool::Buffer> buf;
  // What is at hand goes first: the whole body (buffered), or on a resend
  // what a streamed body gave so far (the tee); the rest streams on.
  auto resendable = [&] { return retry.can_resend(ex); };
  req.body().data = retry.body().empty() ? nullptr : retry.body().data();
  req.body().size = retry.body().size();
  req.body().more = ex.request_has_body && !retry.body_complete();
  for (;;) {
    const auto* trailers = req.body().more ? nullptr : ex.downstream.request_trailers();
    if (const auto e = co_await upstream.write_request(req, trailers); e != UpstreamError::none)
      co_return failed(ex, e, resendable());
    if (!req.body().more) co_return TryResult::ok;
    if (!buf) buf.emplace(core::thread_buffer_pool().get());
    const auto r = co_await ex.downstream.read_body(buf->data(), buf->size());
    if (r.error == StreamError::malformed) {
      // Broken framing mid-stream: the upstream must never see this request
      // complete, and the client connection cannot be read any further.
      upstream.abandon();
      ex.error = ProxyError::bad_request;
      co_return TryResult::failed;
    }
    if (r.error != StreamError::none) {
      upstream.abandon();
      co_return downstream_failed(ex, r.error);
    }
    ex.bytes_received += r.bytes;
    retry.tee(buf->data(), r.bytes, r.done);
    if (ex.filters && ex.filters->observes_bodies()) ex.filters->on_request_body(ex, {buf->data(), r.bytes}, r.done);
    req.body().data = r.bytes ? buf->data() : nullptr;
    req.body().size = r.bytes;
    req.body().more = !r.done;
  }
}

http::awaitable<TryResult> receive_response(http::Exchange& ex, http::UpstreamRequest& upstream,
                                            const RetryState& retry) {
  const auto e = co_await upstream.read_response_header();
  if (e == UpstreamError::none) co_return TryResult::ok;
  co_return failed(ex, e, retry.can_resend(ex));
}

http::awaitable<TryResult> hold_response(http::Exchange& ex, http::UpstreamRequest& upstream, std::size_t limit,
                                         std::string& held, bool& done) {
  auto buf = core::thread_buffer_pool().get();
  done = false;
  while (!done && held.size() < limit) {
    const auto piece = co_await upstream.read_response_body(buf.data(), std::min(buf.size(), limit - held.size()));
    if (piece.error != UpstreamError::none) {
      ex.error = proxy_error(piece.error);
      co_return TryResult::failed;
    }
    held.append(buf.data(), piece.bytes);
    done = piece.done;
  }
  co_return TryResult::ok;
}

http::awaitable<void> answer_failure(http::Exchange& ex, http::ProxyError e) {
  ex.error = e;
  if (e == http::ProxyError::downstream_reset) {
    ex.error_reason = http::to_string(e);
    ex.close_connection = true;
    co_return;
  }
  const auto reply = http::local_reply_for(e);  // named: GCC 12 mishandles temporaries in co_await
  co_await http::send_local_reply(ex, reply);
}

http::awaitable<TryResult> relay_response(http::Exchange& ex, http::UpstreamRequest& upstream, std::string_view held,
                                          bool held_done) {
  auto& res = upstream.response();
  if (ex.filters) ex.filters->on_response(ex, res.base());
  ex.status = res.result_int();
  if (ex.grpc) ex.grpc_status = http::grpc_status_of(res.base());  // a trailers-only response
  const bool hooks = ex.filters && ex.filters->observes_bodies();

  // The header goes out with the first piece of the body.
  res.body().data = nullptr;
  res.body().size = 0;
  res.body().more = true;
  std::optional<core::BufferPool::Buffer> buf;
  bool first = true;
  for (;;) {
    if (!buf) buf.emplace(core::thread_buffer_pool().get());
    http::UpstreamBodyRead piece;
    const char* data = buf->data();
    if (std::exchange(first, false) && (!held.empty() || held_done)) {
      data = held.data();
      piece = {UpstreamError::none, held.size(), held_done};
    } else {
      piece = co_await upstream.read_response_body(buf->data(), buf->size());
    }
    if (piece.error != UpstreamError::none) {
      // The client sees a truncated response (or, if nothing went yet, an error).
      ex.error = proxy_error(piece.error);
      co_return ex.downstream.response_started() ? TryResult::aborted : TryResult::failed;
    }
    if (hooks) ex.filters->on_response_body(ex, {piece.bytes ? data : nullptr, piece.bytes}, piece.done);
    res.body().data = piece.bytes ? const_cast<char*>(data) : nullptr;
    res.body().size = piece.bytes;
    res.body().more = !piece.done;
    const auto* trailers = piece.done ? upstream.response_trailers() : nullptr;
    if (ex.grpc && trailers) {
      if (const int s = http::grpc_status_of(*trailers); s >= 0) ex.grpc_status = s;
    }
    if (const auto w = co_await ex.downstream.write_response(res, trailers); w != StreamError::none)
      co_return downstream_failed(ex, w);  // the route timeout before anything went: still a 504
    ex.bytes_sent += piece.bytes;
    if (piece.done) co_return TryResult::ok;
  }
}

}  // namespace outrigger::router
