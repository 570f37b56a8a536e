#include "outrigger/router/retry_state.hpp"

#include "outrigger/core/buffer_pool.hpp"
#include "outrigger/http/filter.hpp"

namespace outrigger::router {

using http::ProxyError;

RetryState::RetryState(const http::Exchange& ex, const config::Route& route, Clock::time_point route_deadline)
    : buffer_limit_(route.retry_buffer_limit), route_deadline_(route_deadline) {
  const config::RetryPolicy* policy = route.retry ? &*route.retry : nullptr;
  if (ex.control.retry_on || ex.control.max_retries) {
    adjusted_ = policy ? *policy : config::RetryPolicy{};
    adjusted_->retry_on |= ex.control.retry_on;
    if (ex.control.max_retries) adjusted_->num_retries = *ex.control.max_retries;
    policy = adjusted_->retry_on ? &*adjusted_ : nullptr;
  }
  if (!policy) return;
  // Retries need the whole request at hand: only the policy's methods (the
  // idempotent ones by default) whose body fits the retry buffer.
  const auto method = ex.request.method_string();
  // gRPC calls are all POSTs: for them the policy's retry_on says what is safe.
  const bool method_ok = ex.grpc || std::find(policy->retriable_methods.begin(), policy->retriable_methods.end(),
                                              method) != policy->retriable_methods.end();
  // A body of unknown length (chunked, or HTTP/2 without Content-Length:
  // gRPC) streams and is teed; whether it can go again is known at the retry.
  const bool body_fits =
      !ex.request_has_body || !ex.request_content_length || *ex.request_content_length <= buffer_limit_;
  if (!method_ok || !body_fits) return;
  policy_ = policy;
  max_attempts_ = 1 + policy->num_retries;
}

void RetryState::tee(const char* data, std::size_t n, bool done) {
  body_done_ = done;
  if (tee_overflow_) return;
  if (body_.size() + n > buffer_limit_) {
    tee_overflow_ = true;
    std::string().swap(body_);
    return;
  }
  body_.append(data, n);
}

http::awaitable<ProxyError> RetryState::buffer_body(http::Exchange& ex) {
  if (!policy_ || !ex.request_has_body || !ex.request_content_length) co_return ProxyError::none;
  body_.reserve(*ex.request_content_length);
  auto buf = core::thread_buffer_pool().get();
  for (bool done = false; !done;) {
    const auto r = co_await ex.downstream.read_body(buf.data(), buf.size());
    switch (r.error) {
      case http::StreamError::none: break;
      case http::StreamError::malformed: co_return ProxyError::bad_request;
      case http::StreamError::timeout: co_return ProxyError::timeout;
      case http::StreamError::reset: co_return ProxyError::downstream_reset;
    }
    body_.append(buf.data(), r.bytes);
    done = r.done;
  }
  if (ex.filters && ex.filters->observes_bodies()) ex.filters->on_request_body(ex, body_, true);
  ex.bytes_received = body_.size();
  buffered_ = true;
  co_return ProxyError::none;
}

bool RetryState::retriable(int s) const {
  if (!policy_) return false;
  const auto on = policy_->retry_on;
  if ((on & config::retry_5xx) && s >= 500) return true;
  if ((on & config::retry_gateway_error) && (s == 502 || s == 503 || s == 504)) return true;
  return (on & config::retry_retriable_status_codes) &&
         std::find(policy_->retriable_status_codes.begin(), policy_->retriable_status_codes.end(), s) !=
             policy_->retriable_status_codes.end();
}

bool RetryState::retriable_grpc(int s) const {
  if (!policy_) return false;
  const auto on = policy_->retry_on;
  switch (s) {
    case 1: return on & config::retry_grpc_cancelled;
    case 4: return on & config::retry_grpc_deadline_exceeded;
    case 8: return on & config::retry_grpc_resource_exhausted;
    case 13: return on & config::retry_grpc_internal;
    case 14: return on & config::retry_grpc_unavailable;
    default: return false;
  }
}

bool RetryState::retriable(ProxyError e) const {
  if (!policy_) return false;
  const auto on = policy_->retry_on;
  switch (e) {
    case ProxyError::connect_failure:
      return on & (config::retry_5xx | config::retry_gateway_error | config::retry_connect_failure);
    case ProxyError::upstream_reset:
    case ProxyError::upstream_protocol:
    case ProxyError::timeout:  // a per-try timeout; the route timeout never retries
      return on & (config::retry_5xx | config::retry_gateway_error | config::retry_reset);
    default:
      return false;
  }
}

bool RetryState::grant(upstream::RetryBudget& budget, upstream::Admission::Ticket& ticket,
                       observability::ClusterSlice& stats, core::Random& random) {
  if (!policy_ || attempt_ >= max_attempts_) return false;
  const auto cap = std::min(policy_->backoff_max,
                            policy_->backoff_base * (1 << std::min<std::uint32_t>(attempt_ - 1, 16)));
  backoff_ = std::chrono::milliseconds(random.below(static_cast<std::uint64_t>(cap.count()) + 1));
  const auto now = Clock::now();
  if (now + backoff_ >= route_deadline_) return false;
  if (!budget.try_retry(now)) {
    stats.retries_budget_exhausted.inc();
    return false;
  }
  if (!ticket.take_retry()) return false;
  stats.retries.inc();
  return true;
}

RetryState::Clock::time_point RetryState::try_deadline(Clock::time_point now) const {
  if (policy_ && policy_->per_try_timeout.count() > 0) return std::min(route_deadline_, now + policy_->per_try_timeout);
  return route_deadline_;
}

}  // namespace outrigger::router
