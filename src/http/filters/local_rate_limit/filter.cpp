#include "http/filters/local_rate_limit/filter.hpp"

#include <cmath>

namespace outrigger::http {

std::optional<double> LocalRateLimitFilter::Bucket::take(Clock::time_point now, double rate, double burst) {
  const double elapsed = std::chrono::duration<double>(now - last).count();
  if (elapsed > 0) {
    tokens = std::min(burst, tokens + elapsed * rate);
    last = now;
  }
  if (tokens >= 1) {
    tokens -= 1;
    return std::nullopt;
  }
  return (1 - tokens) / rate;
}

LocalRateLimitFilter::LocalRateLimitFilter(std::shared_ptr<const LocalRateLimitConfig> config, unsigned worker)
    : config_(std::move(config)),
      rate_(config_->tokens_per_second / config_->workers),
      burst_(std::max(1.0, std::floor(config_->burst / config_->workers))),
      single_{burst_, Clock::now()},
      overflow_{burst_, Clock::now()} {
  if (config_->allowed) allowed_ = &(*config_->allowed)[worker];
  if (config_->limited) limited_ = &(*config_->limited)[worker];
}

awaitable<FilterResult> LocalRateLimitFilter::on_request(Exchange& ex) {
  using Key = LocalRateLimitConfig::Key;
  const auto now = ex.start;
  Bucket* bucket = &single_;
  if (config_->key != Key::none) {
    std::string_view key;
    switch (config_->key) {
      case Key::source_ip: key = ex.downstream_ip; break;
      case Key::header: key = ex.request[config_->header]; break;
      case Key::peer_identity: key = ex.peer_identity; break;  // callers without mTLS share one bucket
      case Key::none: break;
    }
    bucket = find(key, now);
  }
  const auto wait = bucket->take(now, rate_, burst_);
  if (!wait) {
    if (allowed_) allowed_->inc();
    co_return std::nullopt;
  }
  if (limited_) limited_->inc();
  LocalReply reply{429, "rate limited\n", "rate_limited"};
  // The reply owns its value: it may be written after other requests ran here.
  reply.extra = {"retry-after", std::to_string(static_cast<long>(std::ceil(*wait)))};
  co_return reply;
}

LocalRateLimitFilter::Bucket* LocalRateLimitFilter::find(std::string_view key, Clock::time_point now) {
  if (auto it = buckets_.find(key); it != buckets_.end()) return &it->second;
  if (buckets_.size() >= config_->max_keys) {
    // Forget the buckets that have refilled: a new one would be the same.
    std::erase_if(buckets_, [&](auto& kv) {
      const double elapsed = std::chrono::duration<double>(now - kv.second.last).count();
      return kv.second.tokens + elapsed * rate_ >= burst_;
    });
    if (buckets_.size() >= config_->max_keys) return &overflow_;
  }
  return &buckets_.emplace(std::string(key), Bucket{burst_, now}).first->second;
}

}  // namespace outrigger::http
