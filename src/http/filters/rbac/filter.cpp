#include "http/filters/rbac/filter.hpp"

#include <fmt/format.h>

#include "outrigger/core/glob.hpp"
#include "outrigger/http/jwt_claims.hpp"
#include "outrigger/http/path.hpp"

namespace outrigger::http {

namespace ip = boost::asio::ip;

bool RbacPolicy::Permission::permits(std::string_view method, std::string_view path) const {
  const bool method_ok = methods.empty() || std::find(methods.begin(), methods.end(), method) != methods.end();
  if (!method_ok) return false;
  if (paths.empty()) return true;
  return std::any_of(paths.begin(), paths.end(), [&](const auto& p) { return core::glob_match(p, path); });
}

RbacFilter::RbacFilter(std::shared_ptr<const RbacPolicy> policy, unsigned worker) : policy_(std::move(policy)) {
  for (const auto& s : policy_->series) {
    auto at = [&](observability::PerWorker<observability::Counter>* c) { return c ? &(*c)[worker] : nullptr; };
    counters_.push_back({at(s.allowed), at(s.denied), at(s.shadow_allowed), at(s.shadow_denied)});
  }
  counters_.resize(policy_->roles.size() + 1);
}

bool RbacFilter::matches(const RbacPolicy::Principal& p, std::string_view identity, const JwtClaims* claims,
                         const std::optional<ip::address>& addr) const {
  using Kind = RbacPolicy::Principal::Kind;
  switch (p.kind) {
    case Kind::any: return true;
    case Kind::authenticated: return !identity.empty() || claims != nullptr;
    case Kind::identity: return !identity.empty() && core::glob_match(p.pattern, identity);
    case Kind::jwt_claim: return claims && claims->contains(p.pattern, p.claim_value);
    case Kind::source_ip:
      if (!addr) return false;
      if (const auto* v4 = std::get_if<ip::network_v4>(&p.range)) {
        return addr->is_v4() && ip::network_v4(addr->to_v4(), v4->prefix_length()).network() == v4->network();
      } else {
        const auto& v6 = std::get<ip::network_v6>(p.range);
        return addr->is_v6() && ip::network_v6(addr->to_v6(), v6.prefix_length()).network() == v6.network();
      }
  }
  return false;
}

std::pair<std::size_t, bool> RbacFilter::decide(std::string_view method, std::string_view path,
                                                std::string_view identity, const JwtClaims* claims,
                                                std::string_view client_ip) {
  const auto& p = *policy_;
  std::optional<ip::address> addr;
  if (p.any_source_ip) {
    boost::system::error_code ec;
    const auto a = ip::make_address(client_ip, ec);
    if (!ec) addr = a.is_v6() && a.to_v6().is_v4_mapped() ? ip::address(ip::make_address_v4(ip::v4_mapped, a.to_v6())) : a;
  }
  std::size_t policy = p.roles.size();  // "default"
  for (const auto& b : p.bindings) {
    const auto& role = p.roles[b.role];
    if (!std::any_of(role.permissions.begin(), role.permissions.end(),
                     [&](const RbacPolicy::Permission& perm) { return perm.permits(method, path); }))
      continue;
    if (std::any_of(b.principals.begin(), b.principals.end(),
                    [&](const RbacPolicy::Principal& pr) { return matches(pr, identity, claims, addr); })) {
      policy = b.role;
      break;
    }
  }
  const bool allow = policy < p.roles.size() || p.default_allow;
  const auto& c = counters_[policy];
  if (auto* counter = p.shadow ? (allow ? c.shadow_allowed : c.shadow_denied) : (allow ? c.allowed : c.denied))
    counter->inc();
  if (!allow) audit(identity, claims, client_ip, method, path, policy < p.roles.size() ? std::string_view(p.roles[policy].name) : "default");
  return {policy, allow};
}

awaitable<FilterResult> RbacFilter::on_request(Exchange& ex) {
  const auto path = path_of(ex.request.target());
  if (has_encoded_separator(path)) co_return LocalReply{400, "bad request path\n", "bad_request"};
  const auto [policy, allow] =
      decide(ex.request.method_string(), path, ex.peer_identity, ex.state.get<JwtClaims>(), ex.downstream_ip);
  if (allow || policy_->shadow) co_return std::nullopt;
  co_return LocalReply{403, "RBAC: access denied\n", "rbac_denied"};
}

// A connection has no method and no path: only the roles whose permissions
// name neither (the whole service) grant it.
bool RbacFilter::on_connection(std::string_view peer_identity, std::string_view client_ip) {
  const auto [policy, allow] = decide("", "", peer_identity, nullptr, client_ip);
  return allow || policy_->shadow;
}

void RbacFilter::audit(std::string_view identity, const JwtClaims* claims, std::string_view client_ip,
                       std::string_view method, std::string_view path, std::string_view policy) const {
  std::string_view subject;
  if (claims) {
    if (const auto* s = claims->payload.if_contains("sub"); s && s->is_string()) subject = s->as_string();
  }
  const auto line = fmt::format("rbac {} listener={} identity={} jwt_sub={} source_ip={} method={} path=\"{}\" policy={}",
                                policy_->shadow ? "shadow_deny" : "deny", policy_->listener,
                                identity.empty() ? "-" : identity, subject.empty() ? "-" : subject, client_ip,
                                method.empty() ? "-" : method, path, policy);
  policy_->audit(line);
}

}  // namespace outrigger::http
