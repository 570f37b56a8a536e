// The HTTP filter interface and registry. A filter type is one folder under
// src/http/filters/<type>/: a config struct parsed once from YAML by its
// factory, a Filter made per request from it, and one registry entry keyed by
// the YAML `type`. Filters run in config order before the router; a filter
// answers locally by returning a LocalResponse, or lets the exchange go on.
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

namespace outrigger::http {

struct LocalResponse {
  int status = 403;
  std::string_view body;
  std::string_view reason;                    // x-outrigger-error
  std::span<const config::HeaderValue> headers;  // more response headers; must outlive the reply
};

class Filter {
 public:
  virtual ~Filter() = default;
  // Request headers are in ex.request; they may be edited.
  virtual std::optional<LocalResponse> on_request(Exchange& ex) = 0;
  // Response headers, before they go downstream; they may be edited.
  virtual void on_response(Exchange& /*ex*/, ResponseMessage& /*response*/) {}
};

// Made once per config load from a FilterSpec; shared by every request.
class FilterFactory {
 public:
  virtual ~FilterFactory() = default;
  // Per-exchange filter object; may return the same stateless object every time.
  virtual Filter& filter_for_request() = 0;
  // The filter a worker's pipeline uses (called once per worker and config, on
  // that worker's thread). Filters with per-worker state override it.
  virtual Filter& filter_for_worker(unsigned /*worker*/, unsigned /*workers*/) { return filter_for_request(); }
  // Called on the main thread every `file_watch_interval` while this config
  // serves: a filter that reads files (a JWKS, say) reloads the ones that
  // changed here, and must hand the result to the workers without making them
  // take a lock per request (e.g. a generation number they check).
  virtual void refresh() {}
};

// A problem found while building a filter from its YAML, with its position.
struct FilterError {
  config::Mark mark;
  std::string message;
};

// Where a filter is built: its listener, and that listener's metric series
// (for series a filter resolves at load time, e.g. one per rbac policy).
struct FilterContext {
  std::string_view listener;
  observability::ListenerStats* stats = nullptr;  // never null in a running proxy; may be in unit tests
};

using FilterFactoryMaker = std::function<std::unique_ptr<FilterFactory>(
    const config::FilterSpec&, const FilterContext&, std::vector<FilterError>& errors)>;

// The registry of filter types, keyed by their YAML `type`.
const std::vector<std::pair<std::string_view, FilterFactoryMaker>>& filter_types();

// Builds the factory for spec, or returns null with errors appended
// (including "unknown filter type 'x'", with a suggestion).
std::unique_ptr<FilterFactory> make_filter_factory(const config::FilterSpec& spec, const FilterContext& context,
                                                   std::vector<FilterError>& errors);

}  // namespace outrigger::http
