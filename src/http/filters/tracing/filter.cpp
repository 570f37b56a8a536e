#include "http/filters/tracing/filter.hpp"

namespace outrigger::http {

awaitable<FilterResult> TracingFilter::on_request(Exchange& ex) {
  auto* tracer = ex.tracer;
  if (!tracer) co_return std::nullopt;  // the config has no tracing section in effect
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
  co_return std::nullopt;
}

}  // namespace outrigger::http
