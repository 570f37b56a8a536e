#include "http/filters/fault/config.hpp"

#include <cmath>

#include "http/filters/fault/filter.hpp"
#include "outrigger/config/loader.hpp"
#include "outrigger/config/yaml_reader.hpp"

namespace outrigger::http {

FaultPercent::FaultPercent(double percent) : percent_(percent), all_(percent >= 100) {
  // 2^64 * percent / 100 (a share so close to 100 % that it rounds to 2^64 is all).
  const double cut = std::ldexp(percent / 100, 64);
  if (cut >= std::ldexp(1.0, 64)) {
    all_ = true;
  } else if (!all_ && percent > 0) {
    cut_ = static_cast<std::uint64_t>(cut);
  }
}

namespace {

using config::YamlReader;

FaultPercent parse_percent(const YAML::Node& n, const std::string& path, YamlReader& yaml) {
  if (auto v = yaml.number(n, "percent", path, 0, 100)) return FaultPercent(*v);
  return FaultPercent(100);
}

// `header: true`, or false when absent.
bool parse_header(const YAML::Node& n, const std::string& path, YamlReader& yaml) {
  return yaml.boolean(n, "header", path).value_or(false);
}

std::optional<FaultPolicy::Delay> parse_delay(const YAML::Node& n, const std::string& path, YamlReader& yaml) {
  if (!yaml.mapping(n, path, {"fixed", "header", "percent"})) return std::nullopt;
  FaultPolicy::Delay d;
  d.header = parse_header(n, path, yaml);
  d.percent = parse_percent(n, path, yaml);
  const auto fixed = yaml.duration(n, "fixed", path);
  if (fixed && fixed->count() == 0) yaml.error(n["fixed"], path + ".fixed", "must be greater than 0");
  if (fixed) d.fixed = *fixed;
  const bool has_fixed = YamlReader::child(n, "fixed").has_value();
  if (has_fixed == d.header) yaml.error(n, path, "needs exactly one of 'fixed' (a duration) or 'header: true'");
  return d;
}

std::optional<FaultPolicy::Abort> parse_abort(const YAML::Node& n, const std::string& path, YamlReader& yaml) {
  if (!yaml.mapping(n, path, {"status", "grpc_status", "header", "percent"})) return std::nullopt;
  FaultPolicy::Abort a;
  a.header = parse_header(n, path, yaml);
  a.percent = parse_percent(n, path, yaml);
  if (auto v = yaml.integer(n, "status", path, 200, 599)) a.status = static_cast<int>(*v);
  if (auto v = yaml.integer(n, "grpc_status", path, 0, 16)) a.grpc_status = static_cast<int>(*v);
  const int kinds = YamlReader::child(n, "status").has_value() + YamlReader::child(n, "grpc_status").has_value() +
                    a.header;
  if (kinds != 1) yaml.error(n, path, "needs exactly one of 'status', 'grpc_status' or 'header: true'");
  return a;
}

}  // namespace

std::optional<FaultPolicy> parse_fault_policy(const YAML::Node& n, const std::string& path, YamlReader& yaml) {
  const auto before = yaml.error_count();
  if (!yaml.mapping(n, path, {"type", "delay", "abort", "max_active_faults", "headers"})) return std::nullopt;
  FaultPolicy p;
  const auto d = YamlReader::child(n, "delay");
  const auto a = YamlReader::child(n, "abort");
  if (d) p.delay = parse_delay(*d, path + ".delay", yaml);
  if (a) p.abort = parse_abort(*a, path + ".abort", yaml);
  if (!d && !a) yaml.error(n, path, "needs 'delay', 'abort' or both");
  if (auto v = yaml.integer(n, "max_active_faults", path, 1, 1'000'000'000)) p.max_active_faults = *v;
  std::vector<config::HeaderMatch> headers;
  if (auto h = YamlReader::child(n, "headers")) headers = config::read_header_matches(yaml, *h, path + ".headers");
  if (yaml.error_count() != before) return std::nullopt;
  for (const auto& h : headers) p.headers.emplace_back(h);  // their regexes were checked
  return p;
}

std::unique_ptr<FilterFactory> make_fault_factory(const config::FilterSpec& spec, const FilterContext& context,
                                                  YamlReader& yaml) {
  auto c = std::make_shared<FaultConfig>();
  auto policy = parse_fault_policy(*spec.node, context.path, yaml);
  bool ok = policy.has_value();
  if (policy) c->policy = std::move(*policy);
  if (const auto* l = context.listener_config) {
    for (std::size_t i = 0; i < l->routes.size(); ++i) {
      for (const auto& pf : l->routes[i].per_filter_config) {
        if (pf.type != spec.type) continue;
        const auto path = "listeners." + l->name + ".routes[" + std::to_string(i) + "].per_filter_config." + pf.type;
        auto route_policy = parse_fault_policy(*pf.node, path, yaml);
        if (!route_policy) {
          ok = false;
          continue;
        }
        c->routes.emplace_back(&l->routes[i], std::move(*route_policy));
      }
    }
  }
  if (!ok) return nullptr;
  c->active = &c->own_active;
  if (context.stats) {
    const std::string direction(context.direction), listener(context.listener);
    auto& injected = context.stats->counter_family(
        "outrigger_fault_injected_total", "Requests the fault filter delayed (fault=delay) or aborted (fault=abort).",
        {"direction", "listener", "fault"});
    c->delays = context.stats->series(injected, {direction, listener, "delay"});
    c->aborts = context.stats->series(injected, {direction, listener, "abort"});
    auto& overflow = context.stats->counter_family(
        "outrigger_fault_overflow_total",
        "Faults the fault filter did not inject because max_active_faults requests were in a fault.",
        {"direction", "listener"});
    c->overflow = context.stats->series(overflow, {direction, listener});
    auto& active = context.stats->gauge_family(
        "outrigger_fault_active", "Requests in a fault of the fault filter now (delayed, or being aborted).",
        {"direction", "listener"});
    c->active = context.stats->gauge(active, {direction, listener});
  }
  return std::make_unique<SharedConfigFactory<FaultConfig, FaultFilter>>(std::move(c));
}

}  // namespace outrigger::http
