#include "outrigger/http/filters/local_rate_limit.hpp"

#include <yaml-cpp/yaml.h>

#include "outrigger/config/loader.hpp"

#include <cmath>
#include <mutex>
#include <string>
#include <unordered_map>

namespace outrigger::http {

namespace {

enum class Key { none, source_ip, header, peer_identity };

struct Settings {
  double tokens_per_second = 0;
  double burst = 0;
  Key key = Key::none;
  std::string header;  // lower case, for Key::header
  std::size_t max_keys = 10000;
};

struct Bucket {
  double tokens;
  std::chrono::steady_clock::time_point last;

  // Takes a token if there is one; otherwise the seconds until one is back.
  std::optional<double> take(std::chrono::steady_clock::time_point now, double rate, double burst) {
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
};

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// One worker's buckets.
class WorkerLimiter final : public Filter {
 public:
  WorkerLimiter(const Settings& s, unsigned workers)
      : settings_(s),
        rate_(s.tokens_per_second / workers),
        burst_(std::max(1.0, std::floor(s.burst / workers))) {}

  std::optional<LocalResponse> on_request(Exchange& ex) override {
    const auto now = ex.start;
    Bucket* bucket = &single_;
    if (settings_.key != Key::none) {
      std::string_view key;
      switch (settings_.key) {
        case Key::source_ip: key = ex.downstream_ip; break;
        case Key::header: key = ex.request[settings_.header]; break;
        case Key::peer_identity: key = ex.peer_identity; break;  // callers without mTLS share one bucket
        case Key::none: break;
      }
      bucket = find(key, now);
    }
    const auto wait = bucket->take(now, rate_, burst_);
    if (!wait) {
      if (ex.listener_stats) ex.listener_stats->ratelimit_allowed.inc();
      return std::nullopt;
    }
    if (ex.listener_stats) ex.listener_stats->ratelimit_limited.inc();
    retry_after_[0].value = std::to_string(static_cast<long>(std::ceil(*wait)));
    return LocalResponse{429, "rate limited\n", "rate_limited", retry_after_};
  }

 private:
  Bucket* find(std::string_view key, std::chrono::steady_clock::time_point now) {
    if (auto it = buckets_.find(key); it != buckets_.end()) return &it->second;
    if (buckets_.size() >= settings_.max_keys) {
      // Forget the buckets that have refilled: a new one would be the same.
      std::erase_if(buckets_, [&](auto& kv) {
        const double elapsed = std::chrono::duration<double>(now - kv.second.last).count();
        return kv.second.tokens + elapsed * rate_ >= burst_;
      });
      if (buckets_.size() >= settings_.max_keys) return &overflow_;
    }
    return &buckets_.emplace(std::string(key), Bucket{burst_, now}).first->second;
  }

  Settings settings_;
  double rate_, burst_;
  Bucket single_{burst_, std::chrono::steady_clock::now()};
  Bucket overflow_{burst_, std::chrono::steady_clock::now()};
  std::unordered_map<std::string, Bucket, StringHash, std::equal_to<>> buckets_;
  config::HeaderValue retry_after_[1] = {{"retry-after", "1"}};
};

class LocalRateLimitFactory final : public FilterFactory {
 public:
  explicit LocalRateLimitFactory(Settings s) : settings_(std::move(s)) {}

  Filter& filter_for_request() override { return filter_for_worker(0, 1); }

  Filter& filter_for_worker(unsigned worker, unsigned workers) override {
    std::lock_guard lock(mutex_);  // once per worker and config, never per request
    if (limiters_.size() < workers) limiters_.resize(workers);
    if (worker >= limiters_.size()) limiters_.resize(worker + 1);
    if (!limiters_[worker]) limiters_[worker] = std::make_unique<WorkerLimiter>(settings_, std::max(1u, workers));
    return *limiters_[worker];
  }

 private:
  Settings settings_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<WorkerLimiter>> limiters_;
};

std::optional<double> number(const YAML::Node& n, const char* key, std::vector<FilterError>& errors,
                             const config::Mark& mark, bool required) {
  const auto v = n[key];
  if (!v) {
    if (required) errors.push_back({mark, std::string("local_rate_limit: missing required key '") + key + "'"});
    return std::nullopt;
  }
  try {
    const double d = v.as<double>();
    if (d > 0 && std::isfinite(d)) return d;
  } catch (const YAML::Exception&) {
  }
  errors.push_back({{static_cast<int>(v.Mark().line + 1), static_cast<int>(v.Mark().column + 1)},
                    std::string("local_rate_limit.") + key + ": must be a number above 0"});
  return std::nullopt;
}

}  // namespace

std::unique_ptr<FilterFactory> make_local_rate_limit_filter(const config::FilterSpec& spec, const FilterContext& /*context*/,
                                                             std::vector<FilterError>& errors) {
  const auto& n = *spec.node;
  const auto before = errors.size();
  for (const auto& kv : n) {
    const auto k = kv.first.as<std::string>();
    if (k != "type" && k != "tokens_per_second" && k != "burst" && k != "key" && k != "max_keys") {
      auto message = "local_rate_limit: unknown key '" + k + "'";
      if (auto near = config::closest_match(k, {"tokens_per_second", "burst", "key", "max_keys"}); !near.empty())
        message += "; did you mean '" + near + "'?";
      errors.push_back({spec.mark, message});
    }
  }
  Settings s;
  if (auto v = number(n, "tokens_per_second", errors, spec.mark, true)) s.tokens_per_second = *v;
  s.burst = s.tokens_per_second;
  if (auto v = number(n, "burst", errors, spec.mark, false)) s.burst = *v;
  if (auto v = number(n, "max_keys", errors, spec.mark, false)) s.max_keys = static_cast<std::size_t>(*v);
  if (const auto k = n["key"]) {
    const auto key = k.as<std::string>("");
    if (key == "none") {
      s.key = Key::none;
    } else if (key == "source_ip") {
      s.key = Key::source_ip;
    } else if (key == "peer_identity") {
      s.key = Key::peer_identity;
    } else if (!key.empty() && key.find_first_of(" :\t") == std::string::npos) {
      s.key = Key::header;
      s.header = key;
      for (auto& c : s.header) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else {
      errors.push_back({{static_cast<int>(k.Mark().line + 1), static_cast<int>(k.Mark().column + 1)},
                        "local_rate_limit.key: expected none, source_ip, peer_identity or a header name"});
    }
  }
  if (errors.size() != before) return nullptr;
  return std::make_unique<LocalRateLimitFactory>(std::move(s));
}

}  // namespace outrigger::http
