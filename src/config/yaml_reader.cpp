#include "outrigger/config/yaml_reader.hpp"

#include <charconv>
#include <cmath>
#include <sstream>

#include "outrigger/core/duration.hpp"

namespace outrigger::config {

namespace {
std::string list(std::initializer_list<std::string_view> words) {
  std::string out;
  for (auto w : words) out += (out.empty() ? "" : ", ") + std::string(w);
  return out;
}
}  // namespace

std::optional<YAML::Node> YamlReader::child(const YAML::Node& parent, const char* key) {
  if (!parent.IsMap()) return std::nullopt;
  auto n = parent[key];
  if (!n.IsDefined() || n.IsNull()) return std::nullopt;
  return n;
}

bool YamlReader::mapping(const YAML::Node& n, const std::string& path,
                         std::initializer_list<std::string_view> allowed) {
  if (!n.IsMap()) {
    error(n, path, "expected a mapping");
    return false;
  }
  std::vector<std::string_view> keys(allowed);
  for (auto it = n.begin(); it != n.end(); ++it) {
    if (!it->first.IsScalar()) {
      error(it->first, path, "keys must be plain words");
      continue;
    }
    const auto& key = it->first.Scalar();
    if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
    std::string message = "unknown key '" + key + "'";
    if (auto near = closest_match(key, keys); !near.empty()) message += "; did you mean '" + near + "'?";
    error(it->first, path, message);
  }
  return true;
}

bool YamlReader::sequence(const YAML::Node& n, const std::string& path) {
  if (n.IsSequence()) return true;
  error(n, path, "expected a list");
  return false;
}

std::optional<std::string> YamlReader::scalar(const YAML::Node& n, const std::string& path) {
  if (!n.IsScalar()) {
    error(n, path, "expected a single value");
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<std::string> YamlReader::string(const YAML::Node& parent, const char* key, const std::string& path,
                                              bool required) {
  auto n = child(parent, key);
  if (!n) {
    if (required) error(parent, path, std::string("missing required key '") + key + "'");
    return std::nullopt;
  }
  return scalar(*n, join(path, key));
}

std::optional<std::chrono::milliseconds> YamlReader::duration(const YAML::Node& parent, const char* key,
                                                              const std::string& path) {
  auto n = child(parent, key);
  if (!n) return std::nullopt;
  auto s = scalar(*n, join(path, key));
  if (!s) return std::nullopt;
  auto d = core::parse_duration(*s);
  if (!d) error(*n, join(path, key), "invalid duration '" + *s + "' (use e.g. 250ms, 15s, 1m)");
  return d;
}

std::optional<std::uint64_t> YamlReader::integer(const YAML::Node& parent, const char* key, const std::string& path,
                                                 std::uint64_t min, std::uint64_t max) {
  auto n = child(parent, key);
  if (!n) return std::nullopt;
  auto s = scalar(*n, join(path, key));
  if (!s) return std::nullopt;
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
  if (s->empty() || ec != std::errc() || end != s->data() + s->size()) {
    error(*n, join(path, key), "expected a whole number, got '" + *s + "'");
    return std::nullopt;
  }
  if (v < min || v > max) {
    error(*n, join(path, key), "must be from " + std::to_string(min) + " to " + std::to_string(max));
    return std::nullopt;
  }
  return v;
}

std::optional<double> YamlReader::number(const YAML::Node& parent, const char* key, const std::string& path,
                                        double min, double max) {
  auto n = child(parent, key);
  if (!n) return std::nullopt;
  auto s = scalar(*n, join(path, key));
  if (!s) return std::nullopt;
  double v = 0;
  const auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
  if (s->empty() || ec != std::errc() || end != s->data() + s->size() || !std::isfinite(v)) {
    error(*n, join(path, key), "expected a number, got '" + *s + "'");
    return std::nullopt;
  }
  if (v < min || v > max) {
    std::ostringstream range;
    range << "must be a number from " << min << " to " << max;
    error(*n, join(path, key), range.str());
    return std::nullopt;
  }
  return v;
}

std::optional<bool> YamlReader::boolean(const YAML::Node& parent, const char* key, const std::string& path) {
  auto n = child(parent, key);
  if (!n) return std::nullopt;
  bool v = false;
  if (!n->IsScalar() || !YAML::convert<bool>::decode(*n, v)) {
    error(*n, join(path, key), "expected true or false");
    return std::nullopt;
  }
  return v;
}

std::optional<core::Address> YamlReader::address(const YAML::Node& parent, const char* key, const std::string& path,
                                                 bool allow_zero_port, bool required) {
  auto s = string(parent, key, path, required);
  if (!s) return std::nullopt;
  std::string why;
  auto a = core::parse_address(*s, allow_zero_port, &why);
  if (!a) error(parent[key], join(path, key), "invalid address '" + *s + "': " + why);
  return a;
}

std::optional<std::string> YamlReader::choice(const YAML::Node& parent, const char* key, const std::string& path,
                                              std::initializer_list<std::string_view> allowed) {
  auto s = string(parent, key, path);
  if (!s) return std::nullopt;
  if (std::find(allowed.begin(), allowed.end(), *s) != allowed.end()) return s;
  error(parent[key], join(path, key), "invalid value '" + *s + "' (one of: " + list(allowed) + ")");
  return std::nullopt;
}

std::vector<std::string> YamlReader::strings(const YAML::Node& parent, const char* key, const std::string& path) {
  std::vector<std::string> out;
  auto n = child(parent, key);
  if (!n) return out;
  const auto p = join(path, key);
  if (n->IsScalar()) {
    out.push_back(n->Scalar());
    return out;
  }
  if (!sequence(*n, p)) return out;
  for (std::size_t i = 0; i < n->size(); ++i)
    if (auto s = scalar((*n)[i], index(p, i))) out.push_back(*s);
  return out;
}

std::vector<HeaderValue> YamlReader::header_values(const YAML::Node& parent, const char* key,
                                                   const std::string& path) {
  std::vector<HeaderValue> out;
  auto n = child(parent, key);
  if (!n) return out;
  const auto p = join(path, key);
  if (n->IsMap()) {
    for (auto it = n->begin(); it != n->end(); ++it) {
      auto name = scalar(it->first, p);
      auto value = scalar(it->second, p + "." + (name ? *name : ""));
      if (name && value) out.push_back({*name, *value});
    }
  } else if (n->IsSequence()) {
    for (std::size_t i = 0; i < n->size(); ++i) {
      const auto item = (*n)[i];
      const auto ip = index(p, i);
      if (!mapping(item, ip, {"name", "value"})) continue;
      auto name = string(item, "name", ip, true);
      auto value = string(item, "value", ip, true);
      if (name && value) out.push_back({*name, *value});
    }
  } else {
    error(*n, p, "expected a mapping of header names to values");
  }
  for (auto& h : out) {
    for (auto& c : h.name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

}  // namespace outrigger::config
