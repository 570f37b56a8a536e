#include "http/filters/tracing/config.hpp"

#include "http/filters/tracing/filter.hpp"
#include "outrigger/config/yaml_reader.hpp"

namespace outrigger::http {

namespace {
class TracingFactory final : public FilterFactory {
 public:
  std::unique_ptr<Filter> make_filter(unsigned) const override { return std::make_unique<TracingFilter>(); }
};
}  // namespace

std::unique_ptr<FilterFactory> make_tracing_factory(const config::FilterSpec& spec, const FilterContext& context,
                                                    config::YamlReader& yaml) {
  // All settings live in the top-level `tracing` section.
  const auto before = yaml.error_count();
  yaml.mapping(*spec.node, std::string(context.path), {"type"});
  if (yaml.error_count() != before) return nullptr;
  return std::make_unique<TracingFactory>();
}

}  // namespace outrigger::http
