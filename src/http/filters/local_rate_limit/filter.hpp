#pragma once

#include <chrono>
#include <string>
#include <unordered_map>

#include "http/filters/local_rate_limit/config.hpp"

namespace outrigger::http {

// One worker's buckets.
class LocalRateLimitFilter final : public Filter {
 public:
  LocalRateLimitFilter(std::shared_ptr<const LocalRateLimitConfig> config, unsigned worker);
  awaitable<FilterResult> on_request(Exchange& ex) override;

 private:
  using Clock = std::chrono::steady_clock;
  struct Bucket {
    double tokens;
    Clock::time_point last;
    // Takes a token if there is one; otherwise the seconds until one is back.
    std::optional<double> take(Clock::time_point now, double rate, double burst);
  };
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  Bucket* find(std::string_view key, Clock::time_point now);

  std::shared_ptr<const LocalRateLimitConfig> config_;
  double rate_, burst_;
  Bucket single_, overflow_;
  std::unordered_map<std::string, Bucket, StringHash, std::equal_to<>> buckets_;
  observability::Counter* allowed_ = nullptr;
  observability::Counter* limited_ = nullptr;
};

}  // namespace outrigger::http
