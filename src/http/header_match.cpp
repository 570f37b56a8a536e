#include "outrigger/http/header_match.hpp"

namespace outrigger::http {

HeaderMatcher::HeaderMatcher(const config::HeaderMatch& m) : m_(m) {
  if (m_.regex) regex_.emplace(*m_.regex, std::regex::ECMAScript | std::regex::optimize);
}

bool HeaderMatcher::matches(const RequestMessage& request) const {
  const auto it = request.find(m_.name);
  bool ok = it != request.end();
  if (ok) {
    const auto v = it->value();
    if (m_.exact) {
      ok = v == *m_.exact;
    } else if (m_.prefix) {
      ok = v.substr(0, m_.prefix->size()) == *m_.prefix;
    } else if (regex_) {
      ok = std::regex_match(v.begin(), v.end(), *regex_);
    }
  }
  return ok != m_.invert;
}

bool all_match(const std::vector<HeaderMatcher>& matchers, const RequestMessage& request) {
  for (const auto& m : matchers)
    if (!m.matches(request)) return false;
  return true;
}

}  // namespace outrigger::http
