// The HTTP filter interface and registry. A filter type is one folder under
// src/http/filters/<type>/: a config parsed once from YAML by its factory
// (config.hpp/.cpp, with the metrics it counts), the Filter each worker makes
// from it (filter.hpp/.cpp), one line in src/http/filter_registry.cpp keyed by
// the YAML `type`, and a test file. Nothing else changes.
//
// Filters run in config order, after the route match and before the router
// (or the direct response): each may edit the request, answer it (a
// LocalReply), or suspend first (co_await: a timer, a remote check) without
// blocking the worker. Every response, local replies included, passes the
// on_response of every filter that saw the request, in reverse order.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "outrigger/config/config.hpp"
#include "outrigger/http/exchange.hpp"

namespace outrigger::config {
class YamlReader;  // outrigger/config/yaml_reader.hpp: filter configs include it
}
namespace outrigger::observability {
class Stats;
}

namespace outrigger::http {

// What a filter decides about a request: go on (nullopt) or answer it.
using FilterResult = std::optional<LocalReply>;

// One worker's filter for one config: it may keep per-worker state (token
// buckets, counters, caches) without a lock; what belongs to one request
// goes in ex.state, since requests interleave whenever one suspends.
class Filter {
 public:
  virtual ~Filter() = default;
  // Request headers are in ex.request; they may be edited.
  virtual awaitable<FilterResult> on_request(Exchange& ex) = 0;
  // The response header, before it goes downstream; it may be edited.
  virtual void on_response(Exchange& /*ex*/, ResponseHeader& /*response*/) {}
  // Body hooks (observers): called for each piece as it passes, when
  // observes_bodies() says so. The last piece has end set.
  virtual bool observes_bodies() const { return false; }
  virtual void on_request_body(Exchange& /*ex*/, std::span<const char> /*data*/, bool /*end*/) {}
  virtual void on_response_body(Exchange& /*ex*/, std::span<const char> /*data*/, bool /*end*/) {}
  // A connection that is not HTTP (opaque TCP, TLS passthrough) from this
  // client: false refuses it. Only filters that decide by who the client is
  // (rbac) have a say; the others let it through.
  virtual bool on_connection(std::string_view /*peer_identity*/, std::string_view /*client_ip*/) { return true; }
};

// Where a filter's factory is built: its listener, and the metrics registry
// in which it declares the series it counts (resolved here, once per config).
struct FilterContext {
  std::string path;  // where the filter's YAML is, for messages: "listeners.ingress.filters[0]"
  std::string_view listener;
  std::string_view direction;            // "inbound" or "outbound"
  observability::Stats* stats = nullptr;  // never null in a running proxy; may be in unit tests
  unsigned workers = 1;
  // The listener's config: its routes' per_filter_config, for the factories
  // of types that take per-route settings. Null in some unit tests.
  const config::Listener* listener_config = nullptr;
};

// Made once per config load from a FilterSpec; shared by every worker.
class FilterFactory {
 public:
  virtual ~FilterFactory() = default;
  // The filter of worker `worker` (of `workers`), made on that worker's
  // thread when the config reaches it.
  virtual std::unique_ptr<Filter> make_filter(unsigned worker) const = 0;
  // Called on the main thread every `file_watch_interval` while this config
  // serves: a filter that reads files (a JWKS, say) reloads the ones that
  // changed here, and must hand the result to the workers without making them
  // take a lock per request (e.g. a generation number they check).
  virtual void refresh() {}
};

// The usual factory: a const Config shared by the workers' filters, each
// made as FilterT(config, worker).
template <class Config, class FilterT>
class SharedConfigFactory final : public FilterFactory {
 public:
  explicit SharedConfigFactory(std::shared_ptr<const Config> config) : config_(std::move(config)) {}
  std::unique_ptr<Filter> make_filter(unsigned worker) const override {
    return std::make_unique<FilterT>(config_, worker);
  }
  const Config& config() const { return *config_; }

 private:
  std::shared_ptr<const Config> config_;
};

// Builds a factory from the filter's YAML (spec.node), reporting problems
// through `yaml` (positioned, with the filter's path); null when it cannot.
using FilterFactoryMaker =
    std::function<std::unique_ptr<FilterFactory>(const config::FilterSpec&, const FilterContext&, config::YamlReader&)>;

// The registry of filter types, keyed by their YAML `type`.
struct FilterType {
  std::string name;
  FilterFactoryMaker make;
  // The factory reads routes' per_filter_config settings of its type (any
  // type may be disabled per route: FilterChain skips it).
  bool per_route = false;
};
const std::vector<FilterType>& filter_types();
// Adds a filter type (a test's, or an embedder's) before any config that
// names it is built; main thread only.
void add_filter_type(std::string name, FilterFactoryMaker make, bool per_route = false);

// Builds the factory for spec, or returns null with errors reported
// (including "unknown filter type 'x'", with a suggestion).
std::unique_ptr<FilterFactory> make_filter_factory(const config::FilterSpec& spec, const FilterContext& context,
                                                   config::YamlReader& yaml);

// One worker's filters of one listener and config, in order.
class FilterChain {
 public:
  explicit FilterChain(std::vector<std::unique_ptr<Filter>> filters);
  // Runs the filters' on_request until one answers; ex.filters_ran counts
  // those that ran (the answering one included). Filters the matched route
  // disables (per_filter_config: {type: {disabled: true}}) are skipped here
  // and in the hooks below.
  awaitable<FilterResult> on_request(Exchange& ex);
  // The response header through the filters that saw the request, last first.
  void on_response(Exchange& ex, ResponseHeader& response);
  bool observes_bodies() const { return observes_bodies_; }
  void on_request_body(Exchange& ex, std::span<const char> data, bool end);
  void on_response_body(Exchange& ex, std::span<const char> data, bool end);
  std::size_t size() const { return filters_.size(); }
  // Every filter's on_connection, in order: false at the first that refuses.
  bool on_connection(std::string_view peer_identity, std::string_view client_ip) {
    for (auto& f : filters_)
      if (!f->on_connection(peer_identity, client_ip)) return false;
    return true;
  }

 private:
  static bool skipped(const Exchange& ex, std::size_t i) {
    return ex.route && i < ex.route->disabled_filters.size() && ex.route->disabled_filters[i];
  }
  std::vector<std::unique_ptr<Filter>> filters_;
  bool observes_bodies_ = false;
};

}  // namespace outrigger::http
