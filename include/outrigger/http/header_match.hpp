// A condition on a request header (config::HeaderMatch) ready to test: a
// route's `match.headers`, the fault filter's `headers`. Its regex is
// compiled once, when the snapshot is built; testing a request allocates
// nothing.
#pragma once

#include <optional>
#include <regex>
#include <vector>

#include "outrigger/config/config.hpp"
#include "outrigger/http/exchange.hpp"

namespace outrigger::http {

class HeaderMatcher {
 public:
  // Throws std::regex_error for a regex the loader let through (it checks them).
  explicit HeaderMatcher(const config::HeaderMatch& m);
  bool matches(const RequestMessage& request) const;

 private:
  config::HeaderMatch m_;
  std::optional<std::regex> regex_;
};

// True when every one matches (an empty list matches every request).
bool all_match(const std::vector<HeaderMatcher>& matchers, const RequestMessage& request);

}  // namespace outrigger::http
