// Request-target normalisation, done once per request before routing, so that
// routes, RBAC and the upstream all see one spelling of a path: dot segments
// removed and percent-encoding normalised (RFC 3986, through Boost.URL), and
// runs of slashes merged. "/api/./x//y/../%7Ez" becomes "/api/x/~z". A path
// with an encoded '/' or '\' (%2F, %5C) is left as sent.
#pragma once

#include <string>
#include <string_view>

namespace outrigger::http {

enum class TargetCheck {
  unchanged,   // already normal (the common case: checked without allocating)
  normalized,  // `out` holds the normal form, query kept
  invalid,     // not an origin-form target (answer 400)
};

TargetCheck normalize_target(std::string_view target, std::string& out);

// The path of an origin-form target (the part before '?').
inline std::string_view path_of(std::string_view target) { return target.substr(0, target.find('?')); }

// True when a path carries an encoded '/' or '\' (%2F, %5C): it means one
// thing to a proxy that matches decoded paths and another to an upstream that
// splits before decoding, so the rbac filter refuses it.
bool has_encoded_separator(std::string_view path);

}  // namespace outrigger::http
