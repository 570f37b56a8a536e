#include "outrigger/upstream/admission.hpp"

namespace outrigger::upstream {

Admission::Admission(const config::Cluster& config, observability::ClusterStats& stats)
    : limits_(config.circuit_breakers), load_(stats.load) {
  if (config.breaker) breaker_ = std::make_unique<CircuitBreaker>(*config.breaker, stats.load.breaker);
}

Admission::~Admission() = default;

Admission::Verdict Admission::admit(Ticket& out, Clock::time_point now, observability::ClusterSlice& stats) {
  out.release();
  auto breaker = CircuitBreaker::Admission::allowed;
  if (breaker_ && (breaker = breaker_->admit(now)) == CircuitBreaker::Admission::rejected) return Verdict::breaker_open;
  if (load_.requests.fetch_add(1, std::memory_order_relaxed) >= limits_.max_requests) {
    load_.requests.fetch_sub(1, std::memory_order_relaxed);
    stats.overflow_requests.inc();
    if (breaker_) breaker_->record(breaker, CircuitBreaker::Outcome::ignored, now);
    return Verdict::overflow;
  }
  out.admission_ = this;
  out.stats_ = &stats;
  out.breaker_ = breaker;
  out.holds_retry_ = out.finished_ = false;
  return Verdict::admitted;
}

Admission::Ticket& Admission::Ticket::operator=(Ticket&& o) noexcept {
  if (this == &o) return *this;
  release();
  admission_ = std::exchange(o.admission_, nullptr);
  stats_ = o.stats_;
  breaker_ = o.breaker_;
  holds_retry_ = std::exchange(o.holds_retry_, false);
  finished_ = o.finished_;
  return *this;
}

bool Admission::Ticket::take_retry() {
  if (holds_retry_) return true;
  auto& load = admission_->load_;
  if (load.retries.fetch_add(1, std::memory_order_relaxed) >= admission_->limits_.max_retries) {
    load.retries.fetch_sub(1, std::memory_order_relaxed);
    stats_->overflow_retries.inc();
    return false;
  }
  holds_retry_ = true;
  return true;
}

void Admission::Ticket::finish(int status, http::ProxyError error, Clock::time_point now, Clock::duration elapsed) {
  if (!admission_ || finished_) return;
  finished_ = true;
  auto* breaker = admission_->breaker_.get();
  if (!breaker) return;
  using Outcome = CircuitBreaker::Outcome;
  auto outcome = Outcome::success;
  const auto slow = breaker->config().slow_call_duration;
  if (error == http::ProxyError::downstream_reset || error == http::ProxyError::overflow ||
      error == http::ProxyError::bad_request)
    outcome = Outcome::ignored;  // says nothing about the upstream
  else if (status == 0 || status >= 500 || (slow.count() > 0 && elapsed >= slow))
    outcome = Outcome::failure;
  breaker->record(breaker_, outcome, now);
}

void Admission::Ticket::release() {
  if (!admission_) return;
  auto& load = admission_->load_;
  if (!finished_ && admission_->breaker_)  // never reported: a probe goes back
    admission_->breaker_->record(breaker_, CircuitBreaker::Outcome::ignored, Clock::now());
  if (holds_retry_) load.retries.fetch_sub(1, std::memory_order_relaxed);
  load.requests.fetch_sub(1, std::memory_order_relaxed);
  admission_ = nullptr;
  holds_retry_ = false;
}

bool Admission::take_connection() {
  if (load_.connections.fetch_add(1, std::memory_order_relaxed) < limits_.max_connections) return true;
  load_.connections.fetch_sub(1, std::memory_order_relaxed);
  return false;
}

bool Admission::join_queue(observability::ClusterSlice& stats) {
  if (load_.pending.fetch_add(1, std::memory_order_relaxed) < limits_.max_pending_requests) return true;
  load_.pending.fetch_sub(1, std::memory_order_relaxed);
  stats.overflow_pending.inc();
  return false;
}

void Admission::leave_queue() { load_.pending.fetch_sub(1, std::memory_order_relaxed); }

}  // namespace outrigger::upstream
