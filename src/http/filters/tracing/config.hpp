// The `tracing` filter: takes the caller's trace context (B3, B3 single, W3C,
// per the top-level `tracing.propagation`), or starts a 128-bit trace, makes
// the sampling decision when none arrived, and opens the SERVER span of the
// exchange. The router then injects a child context into every upstream try
// and records a CLIENT span for each; the pipeline records the SERVER span
// when the exchange ends. Place it first in the chain, so that requests other
// filters answer are traced too. It takes no settings of its own.
#pragma once

#include <memory>

#include "outrigger/http/filter.hpp"

namespace outrigger::http {

std::unique_ptr<FilterFactory> make_tracing_factory(const config::FilterSpec& spec, const FilterContext& context,
                                                    config::YamlReader& yaml);

}  // namespace outrigger::http
