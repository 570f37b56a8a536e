// Typed reads from yaml-cpp nodes that record a positioned error instead of
// throwing, so that every problem is reported in one pass. The one reader of
// YAML: the config loader uses it, and so do filter factories for their own
// keys (one style of unknown-key, did-you-mean, number and duration errors).
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "outrigger/config/loader.hpp"

namespace outrigger::config {

class YamlReader {
 public:
  YamlReader(const std::string& file, std::vector<Diagnostic>& errors) : file_(file), errors_(errors) {}

  static Mark mark_of(const YAML::Node& n) {
    const auto m = n.Mark();
    if (m.is_null()) return {};
    return {m.line + 1, m.column + 1};
  }
  void error(const YAML::Node& at, const std::string& path, const std::string& message) {
    error(mark_of(at), path, message);
  }
  void error(Mark m, const std::string& path, const std::string& message) {
    errors_.push_back({file_, m, path.empty() ? message : path + ": " + message});
  }

  // A mapping with no keys but `allowed`; unknown keys are reported with a suggestion.
  bool mapping(const YAML::Node& n, const std::string& path, std::initializer_list<std::string_view> allowed);
  bool sequence(const YAML::Node& n, const std::string& path);

  // Optional keys of `parent` (a mapping). Absent or null: nullopt, no error;
  // `required` reports the absence at the parent's mark.
  std::optional<std::string> string(const YAML::Node& parent, const char* key, const std::string& path,
                                    bool required = false);
  std::optional<std::chrono::milliseconds> duration(const YAML::Node& parent, const char* key,
                                                    const std::string& path);
  std::optional<std::uint64_t> integer(const YAML::Node& parent, const char* key, const std::string& path,
                                       std::uint64_t min, std::uint64_t max);
  // A real number from min to max.
  std::optional<double> number(const YAML::Node& parent, const char* key, const std::string& path, double min,
                               double max);
  std::optional<bool> boolean(const YAML::Node& parent, const char* key, const std::string& path);
  std::optional<core::Address> address(const YAML::Node& parent, const char* key, const std::string& path,
                                       bool allow_zero_port, bool required);
  std::optional<std::string> choice(const YAML::Node& parent, const char* key, const std::string& path,
                                    std::initializer_list<std::string_view> allowed);
  // A list of strings (a lone string counts as a list of one).
  std::vector<std::string> strings(const YAML::Node& parent, const char* key, const std::string& path);
  // `{name: value, ...}` or `[{name: n, value: v}, ...]`
  std::vector<HeaderValue> header_values(const YAML::Node& parent, const char* key, const std::string& path);

  // The value of key in parent, if present and not null.
  static std::optional<YAML::Node> child(const YAML::Node& parent, const char* key);
  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }
  static std::string index(const std::string& path, std::size_t i) { return path + "[" + std::to_string(i) + "]"; }

  // A scalar's text; an error for a mapping or a list.
  std::optional<std::string> scalar(const YAML::Node& n, const std::string& path);
  const std::string& file() const { return file_; }
  std::size_t error_count() const { return errors_.size(); }

 private:
  const std::string& file_;
  std::vector<Diagnostic>& errors_;
};

}  // namespace outrigger::config
