// The retry decision of one exchange: the route's policy (adjusted by a
// trusted client's x-outrigger-retry-on / -max-retries), the request body
// kept for resending when the policy can retry it, and whether a failed try
// may be followed by another: attempts left, time left before the route
// deadline, the retry budget, and the cluster's max_retries.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "outrigger/config/config.hpp"
#include "outrigger/core/random.hpp"
#include "outrigger/http/exchange.hpp"
#include "outrigger/upstream/admission.hpp"
#include "outrigger/upstream/retry_budget.hpp"

namespace outrigger::router {

class RetryState {
 public:
  using Clock = std::chrono::steady_clock;
  RetryState(const http::Exchange& ex, const config::Route& route, Clock::time_point route_deadline);

  // Reads the whole request body when the policy may resend it (an
  // idempotent method, by default, whose Content-Length fits
  // retry_buffer_limit). Otherwise nothing is read: the body streams on the
  // first try, teed up to retry_buffer_limit, so that a try the upstream
  // did not process (or, for a body of unknown length such as gRPC's, that
  // the policy retries) can still be sent again while the tee holds it all.
  // A failure is returned as the error to answer with.
  http::awaitable<http::ProxyError> buffer_body(http::Exchange& ex);

  bool active() const { return policy_ != nullptr; }
  // buffer_body will read the body (a policy, and a Content-Length within the limit).
  bool buffers(const http::Exchange& ex) const { return policy_ && ex.request_has_body && ex.request_content_length; }
  // The whole request body is at hand (buffered before the first try).
  bool body_buffered() const { return buffered_; }
  // What is at hand to send again: the whole body (buffered), or what a
  // streamed body gave so far (the tee, while it fits retry_buffer_limit).
  std::string& body() { return body_; }
  // A streamed body's piece, kept for a resend; `done`: it was the last.
  void tee(const char* data, std::size_t n, bool done);
  // The downstream's body has all been read (buffered, or teed to its end).
  bool body_complete() const { return buffered_ || body_done_; }
  // A try can be sent again from the start: nothing of the body was read,
  // or all that was read is at hand.
  bool can_resend(const http::Exchange& ex) const { return buffered_ || ex.bytes_received == 0 || !tee_overflow_; }

  bool retriable(int status) const;
  bool retriable(http::ProxyError e) const;
  // A gRPC response's grpc-status the policy retries.
  bool retriable_grpc(int grpc_status) const;
  // The policy retries some gRPC status, and a retry is left: a response
  // without its grpc-status in the header is held until the trailers say.
  bool holds_grpc_responses() const { return policy_ && (policy_->retry_on & config::kRetryOnGrpc) && attempt_ < max_attempts_; }
  std::size_t grpc_hold_limit() const { return policy_ ? policy_->grpc_response_buffer_limit : 0; }
  // Takes a retry if attempts, time (its back-off included), the budget and
  // max_retries allow one now; backoff() then says how long to wait first.
  bool grant(upstream::RetryBudget& budget, upstream::Admission::Ticket& ticket, observability::ClusterSlice& stats,
             core::Random& random);
  std::chrono::milliseconds backoff() const { return backoff_; }

  std::uint32_t attempt() const { return attempt_; }
  void next_attempt() { ++attempt_; }
  Clock::time_point route_deadline() const { return route_deadline_; }
  // The deadline of the try about to start (per_try_timeout, capped by the route's).
  Clock::time_point try_deadline(Clock::time_point now) const;

 private:
  std::optional<config::RetryPolicy> adjusted_;  // a copy, when control headers changed it
  const config::RetryPolicy* policy_ = nullptr;  // null: no retries
  std::size_t buffer_limit_;
  Clock::time_point route_deadline_;
  std::uint32_t attempt_ = 1;
  std::uint32_t max_attempts_ = 1;
  std::chrono::milliseconds backoff_{0};
  bool buffered_ = false;
  bool body_done_ = false;
  bool tee_overflow_ = false;  // the streamed body outgrew the buffer: what went cannot go again
  std::string body_;
};

}  // namespace outrigger::router
