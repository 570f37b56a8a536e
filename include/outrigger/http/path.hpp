// Request-target normalisation, done once per request before routing, so that
// routes, filters (rbac, jwt_authn) and the upstream all see one spelling of a
// path (RFC 3986 §6.2.2): percent-encoded unreserved characters decoded
// (%61 -> a), other escapes in upper case, dot segments removed, runs of
// slashes merged; the query is kept as sent. "/api/./x//y/../%7Ez" becomes
// "/api/x/~z". A target that is not origin-form (a fragment, a bad escape, a
// byte outside ASCII) is invalid: the codec answers 400.
//
// Encoded separators (%2F, %5C) follow the listener's
// path_with_escaped_slashes_action: kept as data inside their segment
// (dot segments around them are still removed), rejected, or decoded into
// separators before the path is normalised.
#pragma once

#include <string>
#include <string_view>

#include "outrigger/config/config.hpp"

namespace outrigger::http {

enum class TargetCheck {
  unchanged,   // already normal (the common case: checked without allocating)
  normalized,  // `out` holds the normal form
  invalid,     // answer 400
};

TargetCheck normalize_target(std::string_view target, config::EscapedSlashes escaped_slashes, std::string& out);

// The path of an origin-form target (the part before '?').
inline std::string_view path_of(std::string_view target) { return target.substr(0, target.find('?')); }

// True when a path carries an encoded '/' or '\' (%2F, %5C): it means one
// thing to a proxy that matches decoded paths and another to an upstream that
// splits before decoding, so rbac and jwt_authn refuse it.
bool has_encoded_separator(std::string_view path);

}  // namespace outrigger::http
