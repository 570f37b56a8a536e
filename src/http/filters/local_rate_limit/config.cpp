#include "http/filters/local_rate_limit/config.hpp"

#include "http/filters/local_rate_limit/filter.hpp"
#include "outrigger/config/yaml_reader.hpp"

namespace outrigger::http {

std::unique_ptr<FilterFactory> make_local_rate_limit_factory(const config::FilterSpec& spec,
                                                             const FilterContext& context, config::YamlReader& yaml) {
  const auto& n = *spec.node;
  const auto& path = context.path;
  const auto before = yaml.error_count();
  yaml.mapping(n, path, {"type", "tokens_per_second", "burst", "key", "max_keys"});
  auto c = std::make_shared<LocalRateLimitConfig>();
  c->workers = std::max(1u, context.workers);
  if (auto v = yaml.number(n, "tokens_per_second", path, 1e-6, 1e9)) {
    c->tokens_per_second = *v;
  } else if (!config::YamlReader::child(n, "tokens_per_second")) {
    yaml.error(n, path, "missing required key 'tokens_per_second'");
  }
  c->burst = c->tokens_per_second;
  if (auto v = yaml.number(n, "burst", path, 1, 1e9)) c->burst = *v;
  if (auto v = yaml.integer(n, "max_keys", path, 1, 10'000'000)) c->max_keys = *v;
  if (auto key = yaml.string(n, "key", path)) {
    using Key = LocalRateLimitConfig::Key;
    if (*key == "none") {
      c->key = Key::none;
    } else if (*key == "source_ip") {
      c->key = Key::source_ip;
    } else if (*key == "peer_identity") {
      c->key = Key::peer_identity;
    } else if (!key->empty() && key->find_first_of(" :\t") == std::string::npos) {
      c->key = Key::header;
      c->header = *key;
      for (auto& ch : c->header) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    } else {
      yaml.error(n["key"], path + ".key", "expected none, source_ip, peer_identity or a header name");
    }
  }
  if (yaml.error_count() != before) return nullptr;
  if (context.stats) {
    auto& family = context.stats->counter_family(
        "outrigger_ratelimit_decisions_total",
        "Requests the local_rate_limit filter let through (allowed) or answered 429 (limited).",
        {"direction", "listener", "decision"});
    const std::string direction(context.direction), listener(context.listener);
    c->allowed = context.stats->series(family, {direction, listener, "allowed"});
    c->limited = context.stats->series(family, {direction, listener, "limited"});
  }
  return std::make_unique<SharedConfigFactory<LocalRateLimitConfig, LocalRateLimitFilter>>(std::move(c));
}

}  // namespace outrigger::http
