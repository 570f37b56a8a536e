// The trace-context parsers (observability/tracing.hpp): B3 multi-header, B3
// single and W3C traceparent/tracestate, from header fields built out of the
// input. Whatever a request carries, extract() returns a context or none,
// and a context it returns survives the trip to the next hop: inject() it in
// each format and extract() reads back the same trace id, span, parent and
// decision.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "outrigger/observability/tracing.hpp"

namespace {

using outrigger::config::Propagation;
using outrigger::observability::TraceContext;

// The input is header values, one a line, for these names in turn.
constexpr std::string_view kNames[] = {"b3",           "traceparent", "tracestate",        "x-b3-traceid",
                                       "x-b3-spanid",  "x-b3-sampled", "x-b3-parentspanid", "x-b3-flags",
                                       "X-B3-TraceId", "Traceparent"};

void fail(const char* what, Propagation format) {
  std::fprintf(stderr, "trace context: %s (format %d)\n", what, static_cast<int>(format));
  std::abort();
}

void round_trip(const TraceContext& ctx) {
  if (ctx.trace_low == 0 && ctx.trace_high == 0) return;  // a decision alone: nothing to carry
  const std::uint64_t span = ctx.span_id ? ctx.span_id : 0x0123456789abcdefULL;
  const std::uint64_t parent = 0x1111111111111111ULL;
  for (auto format : {Propagation::b3, Propagation::b3_single, Propagation::w3c}) {
    outrigger::core::HttpFields f;
    outrigger::observability::inject(f, ctx, span, parent, format, true);
    const auto back = outrigger::observability::extract(f, {format});
    if (!back) fail("an injected context does not extract", format);
    if (back->trace_high != ctx.trace_high || back->trace_low != ctx.trace_low) fail("the trace id changed", format);
    if (back->span_id != span) fail("the span id changed", format);
    if (format != Propagation::w3c && back->parent_id != parent) fail("the parent id changed", format);
    const bool sampled = ctx.sampled.value_or(false) || (ctx.debug && format != Propagation::w3c);
    if (back->sampled.value_or(false) != sampled) fail("the sampling decision changed", format);
    if (format == Propagation::w3c && back->tracestate != ctx.tracestate) fail("tracestate changed", format);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  outrigger::core::HttpFields fields;
  for (auto name : kNames) {
    if (in.empty()) break;
    const auto eol = in.find('\n');
    const auto value = in.substr(0, eol);
    if (!value.empty()) fields.insert(name, value);
    in = eol == std::string_view::npos ? std::string_view() : in.substr(eol + 1);
  }
  static const std::vector<std::vector<Propagation>> orders = {
      {Propagation::b3, Propagation::b3_single, Propagation::w3c},
      {Propagation::w3c, Propagation::b3_single, Propagation::b3},
      {Propagation::b3_single},
  };
  for (const auto& order : orders) {
    bool carriers = false;
    const auto ctx = outrigger::observability::extract(fields, order, &carriers);
    if (ctx && !carriers) fail("a context without a carrier", order.front());
    if (ctx) round_trip(*ctx);
  }
  return 0;
}
