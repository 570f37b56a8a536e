#include "outrigger/http/jwt_claims.hpp"

#include <boost/json/value.hpp>

namespace outrigger::http {

bool JwtClaims::contains(std::string_view name, std::string_view value) const {
  const auto* v = payload.if_contains(name);
  if (!v) return false;
  if (const auto* s = v->if_string()) {
    std::string_view text(*s);
    if (text == value) return true;
    while (!text.empty()) {  // a space-separated list, like OAuth's `scope`
      const auto space = text.find(' ');
      if (text.substr(0, space) == value) return true;
      if (space == std::string_view::npos) break;
      text.remove_prefix(space + 1);
    }
    return false;
  }
  if (const auto* a = v->if_array()) {
    for (const auto& e : *a)
      if (const auto* s = e.if_string(); s && std::string_view(*s) == value) return true;
  }
  return false;
}

}  // namespace outrigger::http
