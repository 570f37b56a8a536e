// Reads a YAML config into config::Config and validates it, collecting every
// problem as `FILE:LINE:COLUMN: message` instead of stopping at the first.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "outrigger/config/config.hpp"

namespace YAML {
class Node;
}

namespace outrigger::config {

class YamlReader;

struct Diagnostic {
  std::string file;
  Mark mark;
  std::string message;

  // `FILE:LINE:COLUMN: message`
  std::string to_string() const;
};

struct LoadResult {
  std::optional<Config> config;     // set only when errors is empty
  std::vector<Diagnostic> errors;

  bool ok() const { return config.has_value(); }
};

// Parses and validates. `file` names the source in diagnostics.
LoadResult load_string(std::string_view yaml, const std::string& file);
LoadResult load_file(const std::string& path);

// A `headers:` list of conditions on request headers (a route's match, the
// fault filter's), read and checked as the loader does; errors go to `r`.
std::vector<HeaderMatch> read_header_matches(YamlReader& r, const YAML::Node& list, const std::string& path);

// "did you mean" support: the closest candidate within a small edit distance, or "".
std::string closest_match(std::string_view word, const std::vector<std::string_view>& candidates);

}  // namespace outrigger::config
