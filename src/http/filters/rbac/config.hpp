// The `rbac` filter: who may call what, Envoy RBAC's model in a smaller
// shape. Roles are lists of permissions (methods and path globs); bindings
// give a role to principals (an mTLS identity glob, a JWT claim, a source IP
// range, anyone). The first binding, in config order, whose role permits the
// request and one of whose principals matches it allows the request; when
// none does, `default` decides (deny unless said otherwise).
//
// mode: enforce answers a deny with 403; mode: shadow denies nothing but logs
// and counts what it would have denied. Every deny (or would-be deny) is one
// line on the audit log (spdlog logger "audit", stderr, always at info).
// Decisions are counted per policy (the role that matched, or "default") in
// outrigger_rbac_decisions_total. Paths are matched after the pipeline's
// normalisation (http/path.hpp); a path with an encoded '/' or '\' is refused
// with 400, since a later hop may read it differently.
#pragma once

#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "outrigger/http/filter.hpp"
#include "outrigger/observability/stats.hpp"

namespace outrigger::http {

using AuditSink = std::function<void(std::string_view line)>;

struct RbacPolicy {
  struct Permission {
    std::vector<std::string> methods;  // empty: any
    std::vector<std::string> paths;    // globs; empty: any
    bool permits(std::string_view method, std::string_view path) const;
  };
  struct Role {
    std::string name;
    std::vector<Permission> permissions;
  };
  struct Principal {
    enum class Kind { identity, jwt_claim, source_ip, any, authenticated } kind = Kind::any;
    std::string pattern;      // identity glob, or the claim name
    std::string claim_value;  // jwt_claim: the value it must contain
    std::variant<boost::asio::ip::network_v4, boost::asio::ip::network_v6> range;  // source_ip
  };
  struct Binding {
    std::size_t role;  // index into roles
    std::vector<Principal> principals;
  };
  // This policy's counters: per role, then "default"; each allowed, denied,
  // shadow_allowed, shadow_denied. Empty without a registry.
  struct Series {
    observability::PerWorker<observability::Counter>* allowed = nullptr;
    observability::PerWorker<observability::Counter>* denied = nullptr;
    observability::PerWorker<observability::Counter>* shadow_allowed = nullptr;
    observability::PerWorker<observability::Counter>* shadow_denied = nullptr;
  };

  bool shadow = false;
  bool default_allow = false;
  bool any_source_ip = false;  // parse the client address only when a principal needs it
  std::vector<Role> roles;
  std::vector<Binding> bindings;
  std::vector<Series> series;
  std::string listener;
  AuditSink audit;
};

std::unique_ptr<FilterFactory> make_rbac_factory(const config::FilterSpec& spec, const FilterContext& context,
                                                 config::YamlReader& yaml);
// For tests: the same, with the audit lines handed to `audit` instead of the log.
std::unique_ptr<FilterFactory> make_rbac_factory(const config::FilterSpec& spec, const FilterContext& context,
                                                 config::YamlReader& yaml, AuditSink audit);

}  // namespace outrigger::http
