#include "http/filters/rbac/config.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "http/filters/rbac/filter.hpp"
#include "outrigger/config/yaml_reader.hpp"

namespace outrigger::http {

namespace {

using config::YamlReader;
namespace ip = boost::asio::ip;

AuditSink audit_log() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto l = spdlog::get("audit");
    if (!l) {
      l = spdlog::stderr_logger_mt("audit");
      l->set_pattern("[%Y-%m-%dT%H:%M:%S.%e] [audit] %v");
    }
    l->set_level(spdlog::level::info);  // the audit trail does not follow log_level
    return l;
  }();
  return [](std::string_view line) { logger->info("{}", line); };
}

// "10.0.0.0/8", "2001:db8::/32", or one address.
bool parse_range(const std::string& text, RbacPolicy::Principal& p) {
  boost::system::error_code ec;
  const auto slash = text.find('/');
  const auto addr = ip::make_address(text.substr(0, slash), ec);
  if (ec) return false;
  const std::string with_prefix = slash == std::string::npos ? text + (addr.is_v4() ? "/32" : "/128") : text;
  if (addr.is_v4()) {
    const auto net = ip::make_network_v4(with_prefix, ec);
    if (ec) return false;
    p.range = ip::network_v4(net.network(), net.prefix_length());  // the range, whatever host bits were given
  } else {
    const auto net = ip::make_network_v6(with_prefix, ec);
    if (ec) return false;
    p.range = ip::network_v6(net.network(), net.prefix_length());
  }
  return true;
}

void read_roles(YamlReader& r, const YAML::Node& n, const std::string& path, RbacPolicy& policy) {
  const auto roles = YamlReader::child(n, "roles");
  if (!roles || !roles->IsMap()) {
    r.error(roles ? *roles : n, path + ".roles", "expected a mapping of role names to permission lists");
    return;
  }
  for (const auto& kv : *roles) {
    RbacPolicy::Role role{kv.first.as<std::string>(), {}};
    const auto where = path + ".roles." + role.name;
    if (!r.sequence(kv.second, where)) continue;
    for (std::size_t i = 0; i < kv.second.size(); ++i) {
      const auto perm = kv.second[i];
      const auto pw = YamlReader::index(where, i);
      if (!r.mapping(perm, pw, {"methods", "paths"})) continue;
      RbacPolicy::Permission p;
      p.methods = r.strings(perm, "methods", pw);
      for (auto& m : p.methods)
        for (auto& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      p.paths = r.strings(perm, "paths", pw);
      for (const auto& glob : p.paths)
        if (glob.empty() || (glob.front() != '/' && glob != "*"))
          r.error(perm["paths"], pw + ".paths", "'" + glob + "' must start with '/' (or be '*')");
      role.permissions.push_back(std::move(p));
    }
    policy.roles.push_back(std::move(role));
  }
}

bool read_principal(YamlReader& r, const YAML::Node& pn, const std::string& where, RbacPolicy& policy,
                    RbacPolicy::Principal& p) {
  using Kind = RbacPolicy::Principal::Kind;
  if (!r.mapping(pn, where, {"identity", "jwt_claim", "source_ip", "any", "authenticated"})) return false;
  if (pn.size() != 1) {
    r.error(pn, where, "each principal has exactly one key");
    return false;
  }
  if (auto v = r.string(pn, "identity", where)) {
    p.kind = Kind::identity;
    p.pattern = *v;
  } else if (auto c = YamlReader::child(pn, "jwt_claim")) {
    p.kind = Kind::jwt_claim;
    const auto cw = where + ".jwt_claim";
    if (!r.mapping(*c, cw, {"name", "contains"})) return false;
    auto name = r.string(*c, "name", cw, true);
    auto contains = r.string(*c, "contains", cw, true);
    if (!name || !contains) return false;
    p.pattern = *name;
    p.claim_value = *contains;
  } else if (auto s = r.string(pn, "source_ip", where)) {
    p.kind = Kind::source_ip;
    if (!parse_range(*s, p)) {
      r.error(pn["source_ip"], where + ".source_ip", "'" + *s + "' is not an address or CIDR range");
      return false;
    }
    policy.any_source_ip = true;
  } else if (YamlReader::child(pn, "any")) {
    p.kind = Kind::any;
    if (!r.boolean(pn, "any", where).value_or(false)) {
      r.error(pn["any"], where + ".any", "only 'any: true' makes sense");
      return false;
    }
  } else if (YamlReader::child(pn, "authenticated")) {
    p.kind = Kind::authenticated;
    if (!r.boolean(pn, "authenticated", where).value_or(false)) {
      r.error(pn["authenticated"], where + ".authenticated", "only 'authenticated: true' makes sense");
      return false;
    }
  } else {
    return false;  // the key's value was null or not a string: reported above
  }
  return true;
}

void read_bindings(YamlReader& r, const YAML::Node& n, const std::string& path, RbacPolicy& policy) {
  const auto bindings = YamlReader::child(n, "bindings");
  if (!bindings || !r.sequence(*bindings, path + ".bindings")) return;
  for (std::size_t i = 0; i < bindings->size(); ++i) {
    const auto b = (*bindings)[i];
    const auto where = YamlReader::index(path + ".bindings", i);
    if (!r.mapping(b, where, {"role", "principals"})) continue;
    RbacPolicy::Binding binding{policy.roles.size(), {}};
    const auto role_name = r.string(b, "role", where, true).value_or("");
    for (std::size_t k = 0; k < policy.roles.size(); ++k)
      if (policy.roles[k].name == role_name) binding.role = k;
    if (binding.role == policy.roles.size()) {
      if (!role_name.empty()) r.error(b["role"], where + ".role", "no role named '" + role_name + "'");
      continue;
    }
    const auto principals = YamlReader::child(b, "principals");
    if (!principals || !principals->IsSequence() || principals->size() == 0) {
      r.error(principals ? *principals : b, where + ".principals", "expected a non-empty list");
      continue;
    }
    for (std::size_t k = 0; k < principals->size(); ++k) {
      RbacPolicy::Principal p;
      if (read_principal(r, (*principals)[k], YamlReader::index(where + ".principals", k), policy, p))
        binding.principals.push_back(std::move(p));
    }
    policy.bindings.push_back(std::move(binding));
  }
}

}  // namespace

std::unique_ptr<FilterFactory> make_rbac_factory(const config::FilterSpec& spec, const FilterContext& context,
                                                 config::YamlReader& r, AuditSink audit) {
  const auto& n = *spec.node;
  const auto& path = context.path;
  const auto before = r.error_count();
  r.mapping(n, path, {"type", "mode", "roles", "bindings", "default"});
  auto policy = std::make_shared<RbacPolicy>();
  if (auto m = r.choice(n, "mode", path, {"enforce", "shadow"})) policy->shadow = *m == "shadow";
  if (auto d = r.choice(n, "default", path, {"deny", "allow"})) policy->default_allow = *d == "allow";
  read_roles(r, n, path, *policy);
  read_bindings(r, n, path, *policy);
  if (r.error_count() != before) return nullptr;
  policy->listener = std::string(context.listener);
  policy->audit = std::move(audit);
  if (context.stats) {
    auto& family = context.stats->counter_family(
        "outrigger_rbac_decisions_total",
        "Decisions of the rbac filter: allowed/denied (enforce mode), shadow_allowed/shadow_denied (shadow mode: "
        "what would have been decided), by the policy (role) that matched.",
        {"direction", "listener", "decision", "policy"});
    const std::string direction(context.direction), listener(context.listener);
    auto series_of = [&](const std::string& name) {
      return RbacPolicy::Series{context.stats->series(family, {direction, listener, "allowed", name}),
                                context.stats->series(family, {direction, listener, "denied", name}),
                                context.stats->series(family, {direction, listener, "shadow_allowed", name}),
                                context.stats->series(family, {direction, listener, "shadow_denied", name})};
    };
    for (const auto& role : policy->roles) policy->series.push_back(series_of(role.name));
    policy->series.push_back(series_of("default"));
  }
  return std::make_unique<SharedConfigFactory<RbacPolicy, RbacFilter>>(std::move(policy));
}

std::unique_ptr<FilterFactory> make_rbac_factory(const config::FilterSpec& spec, const FilterContext& context,
                                                 config::YamlReader& yaml) {
  return make_rbac_factory(spec, context, yaml, audit_log());
}

}  // namespace outrigger::http
