#include <algorithm>
#include <string>

#include "http/filters/fault/config.hpp"
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
      {"fault", make_fault_factory, /*per_route=*/true},
  };
  return types;
}
}  // namespace

const std::vector<FilterType>& filter_types() { return registry(); }

void add_filter_type(std::string name, FilterFactoryMaker make, bool per_route) {
  registry().push_back({std::move(name), std::move(make), per_route});
}

std::unique_ptr<FilterFactory> make_filter_factory(const config::FilterSpec& spec, const FilterContext& context,
                                                   config::YamlReader& yaml) {
  std::vector<std::string_view> names;
  for (const auto& t : filter_types()) {
    if (t.name != spec.type) {
      names.push_back(t.name);
      continue;
    }
    const auto* l = context.listener_config;
    if (!t.per_route && l && !l->filters.empty()) {
      // Settings for a type that takes none per route: said once, at its first filter.
      const auto first = std::find_if(l->filters.begin(), l->filters.end(),
                                      [&](const config::FilterSpec& f) { return f.type == spec.type; });
      for (std::size_t r = 0; first != l->filters.end() && &*first == &spec && r < l->routes.size(); ++r)
        for (const auto& pf : l->routes[r].per_filter_config)
          if (pf.type == spec.type)
            yaml.error(pf.mark, "listeners." + l->name + ".routes[" + std::to_string(r) + "].per_filter_config." + pf.type,
                       "the '" + pf.type + "' filter takes no per-route settings; only 'disabled: true'");
    }
    return t.make(spec, context, yaml);
  }
  std::string message = "unknown filter type '" + spec.type + "'";
  if (auto near = config::closest_match(spec.type, names); !near.empty()) message += "; did you mean '" + near + "'?";
  yaml.error(spec.mark, context.path, message);
  return nullptr;
}

}  // namespace outrigger::http
