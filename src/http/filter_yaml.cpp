#include "outrigger/http/filter_yaml.hpp"

#include <algorithm>

#include "outrigger/config/loader.hpp"

namespace outrigger::http {

void FilterYaml::error(const YAML::Node& at, std::string message) {
  const auto m = at.IsDefined() ? at.Mark() : YAML::Mark::null_mark();
  errors_.push_back({m.is_null() ? fallback_ : config::Mark{m.line + 1, m.column + 1}, type_ + ": " + std::move(message)});
}

bool FilterYaml::keys(const YAML::Node& n, std::initializer_list<std::string_view> allowed, const std::string& where) {
  if (!n.IsMap()) {
    error(n, where + ": expected a mapping");
    return false;
  }
  bool ok = true;
  for (const auto& kv : n) {
    const auto k = kv.first.as<std::string>();
    if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
    auto message = where + ": unknown key '" + k + "'";
    if (auto near = config::closest_match(k, std::vector<std::string_view>(allowed)); !near.empty())
      message += "; did you mean '" + near + "'?";
    error(kv.first, message);
    ok = false;
  }
  return ok;
}

std::string FilterYaml::string(const YAML::Node& n, const char* key, const std::string& where, bool required) {
  const auto v = n[key];
  if (!v || !v.IsScalar() || v.Scalar().empty()) {
    if (required || v) error(v ? v : n, where + "." + key + ": expected a non-empty string");
    return {};
  }
  return v.Scalar();
}

std::vector<std::string> FilterYaml::strings(const YAML::Node& n, const std::string& where) {
  std::vector<std::string> out;
  if (!n) return out;
  if (n.IsScalar()) return {n.Scalar()};
  if (!n.IsSequence()) {
    error(n, where + ": expected a list of strings");
    return out;
  }
  for (const auto& v : n) {
    if (v.IsScalar()) {
      out.push_back(v.Scalar());
    } else {
      error(v, where + ": expected a string");
    }
  }
  return out;
}

}  // namespace outrigger::http
