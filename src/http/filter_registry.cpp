#include <string>

#include "http/filters/jwt_authn/config.hpp"
#include "http/filters/local_rate_limit/config.hpp"
#include "http/filters/rbac/config.hpp"
#include "http/filters/tracing/config.hpp"
#include "outrigger/config/loader.hpp"
#include "outrigger/config/yaml_reader.hpp"
#include "outrigger/http/filter.hpp"

namespace outrigger::http {

namespace {
// One line per filter type; each factory lives in src/http/filters/<type>/.
std::vector<FilterType>& registry() {
  static std::vector<FilterType> types = {
      {"tracing", make_tracing_factory},
      {"jwt_authn", make_jwt_authn_factory},
      {"local_rate_limit", make_local_rate_limit_factory},
      {"rbac", [](const config::FilterSpec& s, const FilterContext& c, config::YamlReader& y) {
         return make_rbac_factory(s, c, y);
       }},
  };
  return types;
}
}  // namespace

const std::vector<FilterType>& filter_types() { return registry(); }

void add_filter_type(std::string name, FilterFactoryMaker make) {
  registry().push_back({std::move(name), std::move(make)});
}

std::unique_ptr<FilterFactory> make_filter_factory(const config::FilterSpec& spec, const FilterContext& context,
                                                   config::YamlReader& yaml) {
  std::vector<std::string_view> names;
  for (const auto& t : filter_types()) {
    if (t.name == spec.type) return t.make(spec, context, yaml);
    names.push_back(t.name);
  }
  std::string message = "unknown filter type '" + spec.type + "'";
  if (auto near = config::closest_match(spec.type, names); !near.empty()) message += "; did you mean '" + near + "'?";
  yaml.error(spec.mark, context.path, message);
  return nullptr;
}

}  // namespace outrigger::http
