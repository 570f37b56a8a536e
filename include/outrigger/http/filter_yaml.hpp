// Reading a filter's YAML with positioned errors: each problem becomes a
// FilterError "<type>: <where>: <message>" at the node it is about (the
// filter's own mark when the node has none), so the loader reports
// FILE:LINE:COLUMN. Unknown keys get a did-you-mean.
#pragma once

#include <yaml-cpp/yaml.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "outrigger/http/filter.hpp"

namespace outrigger::http {

class FilterYaml {
 public:
  FilterYaml(std::string_view type, const config::Mark& fallback, std::vector<FilterError>& errors)
      : type_(type), fallback_(fallback), errors_(errors) {}

  void error(const YAML::Node& at, std::string message);
  // A mapping with only `allowed` keys.
  bool keys(const YAML::Node& n, std::initializer_list<std::string_view> allowed, const std::string& where);
  // n[key] as a non-empty string; empty (and, when required or malformed, an error) otherwise.
  std::string string(const YAML::Node& n, const char* key, const std::string& where, bool required);
  // A list of strings (a lone string counts as a list of one); absent: empty.
  std::vector<std::string> strings(const YAML::Node& n, const std::string& where);

 private:
  std::string type_;
  config::Mark fallback_;
  std::vector<FilterError>& errors_;
};

}  // namespace outrigger::http
