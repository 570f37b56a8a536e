#include <string>

#include "outrigger/config/loader.hpp"
#include "outrigger/http/filter.hpp"
#include "outrigger/http/filters/jwt_authn.hpp"
#include "outrigger/http/filters/local_rate_limit.hpp"
#include "outrigger/http/filters/rbac.hpp"
#include "outrigger/http/filters/tracing.hpp"

namespace outrigger::http {

// One line per filter type; the factory functions live beside their filters
// in src/http/filters/<type>/.
const std::vector<std::pair<std::string_view, FilterFactoryMaker>>& filter_types() {
  static const std::vector<std::pair<std::string_view, FilterFactoryMaker>> types = {
      {"tracing", make_tracing_filter},
      {"jwt_authn", make_jwt_authn_filter},
      {"local_rate_limit", make_local_rate_limit_filter},
      {"rbac", [](const config::FilterSpec& s, const FilterContext& c, std::vector<FilterError>& e) {
         return make_rbac_filter(s, c, e);
       }},
  };
  return types;
}

std::unique_ptr<FilterFactory> make_filter_factory(const config::FilterSpec& spec, const FilterContext& context,
                                                   std::vector<FilterError>& errors) {
  std::vector<std::string_view> names;
  for (const auto& [name, make] : filter_types()) {
    if (name == spec.type) return make(spec, context, errors);
    names.push_back(name);
  }
  std::string message = "unknown filter type '" + spec.type + "'";
  if (auto near = config::closest_match(spec.type, names); !near.empty()) message += "; did you mean '" + near + "'?";
  errors.push_back({spec.mark, std::move(message)});
  return nullptr;
}

}  // namespace outrigger::http
