#include "outrigger/http/filters/tracing.hpp"

#include <yaml-cpp/yaml.h>

namespace outrigger::http {

namespace {

class TracingFilter final : public Filter, public FilterFactory {
 public:
  Filter& filter_for_request() override { return *this; }

  std::optional<LocalResponse> on_request(Exchange& ex) override {
    auto* tracer = ex.tracer;
    if (!tracer) return std::nullopt;  // the config has no tracing section in effect
    const auto& config = tracer->config();
    bool carriers = false;
    auto arrived = observability::extract(ex.request.base(), config.propagation, &carriers);
    ex.trace_headers_absent = !carriers;
    ex.trace = arrived ? std::move(*arrived) : observability::TraceContext{};
    if (!arrived) ex.trace.format = config.propagation.front();
    if (ex.trace.trace_low == 0) {  // nothing, or a sampling decision alone: a new trace
      ex.trace.trace_high = tracer->next_id();
      ex.trace.trace_low = tracer->next_id();
      ex.trace.trace_128 = true;
      ex.trace.span_id = 0;
      ex.trace.parent_id = 0;
    }
    if (!ex.trace.sampled) ex.trace.sampled = tracer->sample();
    ex.server_span_id = tracer->next_id();
    ex.traced = true;
    return std::nullopt;
  }
};

}  // namespace

std::unique_ptr<FilterFactory> make_tracing_filter(const config::FilterSpec& spec, const FilterContext& /*context*/,
                                                   std::vector<FilterError>& errors) {
  // All settings live in the top-level `tracing` section; the filter takes none.
  for (const auto& kv : *spec.node) {
    const auto key = kv.first.as<std::string>();
    if (key != "type")
      errors.push_back({spec.mark, "tracing filter: unknown key '" + key + "' (its settings are under the top-level 'tracing')"});
  }
  return std::make_unique<TracingFilter>();
}

}  // namespace outrigger::http
