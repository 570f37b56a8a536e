// The claims of a verified JWT, as jwt_authn leaves them on the exchange for
// the filters after it (rbac's jwt_claim principals, for one).
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>

namespace outrigger::http {

struct JwtClaims {
  std::string provider;         // the provider that verified the token
  boost::json::object payload;  // the token's claims

  // True when claim `name` is the string `value`, an array holding that
  // string, or a space-separated string (such as `scope`) with it as a word.
  bool contains(std::string_view name, std::string_view value) const;
};

}  // namespace outrigger::http
