#include "outrigger/http/path.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

namespace outrigger::http {

namespace {
// A path that normalisation would leave as it is: no dot segment, no empty
// segment, no percent-encoding to normalise.
bool looks_normal(std::string_view path) {
  if (path.find('%') != std::string_view::npos || path.find("//") != std::string_view::npos) return false;
  for (std::size_t at = path.find("/."); at != std::string_view::npos; at = path.find("/.", at + 1)) {
    const auto rest = path.substr(at + 2);
    if (rest.empty() || rest.front() == '/' || (rest.front() == '.' && (rest.size() == 1 || rest[1] == '/'))) return false;
  }
  return true;
}
}  // namespace

TargetCheck normalize_target(std::string_view target, std::string& out) {
  const auto path = path_of(target);
  // Absolute-form (a proxy request) and asterisk-form targets are left as they are.
  if (path.empty() || path.front() != '/' || looks_normal(path)) return TargetCheck::unchanged;
  // An encoded separator is left exactly as sent (Boost.URL would decode it
  // into a real one): an upstream may split it or not, so the rbac filter
  // refuses such paths rather than guess.
  if (has_encoded_separator(path)) return TargetCheck::unchanged;
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed) return TargetCheck::invalid;
  boost::urls::url u(*parsed);
  u.normalize_path();
  std::string merged;
  char prev = 0;
  for (char c : u.encoded_path()) {
    if (c == '/' && prev == '/') continue;
    merged += c;
    prev = c;
  }
  // Boost.URL keeps the ".." segments that climb above the root, and writes
  // "/./" before a path that would start with "//"; a server does neither
  // (RFC 3986 5.2.4).
  for (auto at = merged.find("/./"); at != std::string::npos; at = merged.find("/./")) merged.erase(at, 2);
  if (merged.ends_with("/.")) merged.pop_back();
  while (merged.starts_with("/../")) merged.erase(0, 3);
  if (merged == "/.." || merged.empty()) merged.assign(1, '/');  // (not = "/": GCC 12 warns wrongly at -O2)
  out = std::move(merged);
  if (u.has_query()) {
    out += '?';
    out += u.encoded_query();
  }
  return out == target ? TargetCheck::unchanged : TargetCheck::normalized;
}

bool has_encoded_separator(std::string_view path) {
  for (std::size_t at = path.find('%'); at != std::string_view::npos && at + 2 < path.size();
       at = path.find('%', at + 1)) {
    const char a = path[at + 1], b = static_cast<char>(path[at + 2] | 0x20);
    if ((a == '2' && b == 'f') || (a == '5' && b == 'c')) return true;
  }
  return false;
}

}  // namespace outrigger::http
