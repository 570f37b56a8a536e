#include "outrigger/http/filters/rbac.hpp"

#include "outrigger/http/filter_yaml.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <array>
#include <boost/asio/ip/address.hpp>
#include <mutex>

#include "outrigger/config/loader.hpp"
#include "outrigger/core/glob.hpp"
#include "outrigger/http/jwt_claims.hpp"
#include "outrigger/http/path.hpp"

namespace outrigger::http {

namespace {

struct Permission {
  std::vector<std::string> methods;  // empty: any
  std::vector<std::string> paths;    // globs; empty: any
  bool permits(std::string_view method, std::string_view path) const {
    const bool method_ok =
        methods.empty() || std::find(methods.begin(), methods.end(), method) != methods.end();
    if (!method_ok) return false;
    if (paths.empty()) return true;
    return std::any_of(paths.begin(), paths.end(), [&](const auto& p) { return core::glob_match(p, path); });
  }
};

struct Role {
  std::string name;
  std::vector<Permission> permissions;
};

// An address range, as bytes: IPv4 as its 4 bytes, IPv6 as its 16.
struct Cidr {
  std::array<unsigned char, 16> bytes{};
  unsigned prefix = 0;
  bool v6 = false;
  bool contains(const boost::asio::ip::address& a) const {
    if (a.is_v6() != v6) return false;
    std::array<unsigned char, 16> b{};
    if (v6) {
      b = a.to_v6().to_bytes();
    } else {
      const auto v4 = a.to_v4().to_bytes();
      std::copy(v4.begin(), v4.end(), b.begin());
    }
    const unsigned whole = prefix / 8, bits = prefix % 8;
    if (!std::equal(b.begin(), b.begin() + whole, bytes.begin())) return false;
    if (bits == 0) return true;
    const auto mask = static_cast<unsigned char>(0xff << (8 - bits));
    return (b[whole] & mask) == (bytes[whole] & mask);
  }
};

struct Principal {
  enum class Kind { identity, jwt_claim, source_ip, any, authenticated } kind = Kind::any;
  std::string pattern;      // identity glob, or the claim name
  std::string claim_value;  // jwt_claim: the value it must contain
  Cidr cidr;
};

struct Binding {
  std::size_t role;  // index into roles
  std::vector<Principal> principals;
};

struct Policy {
  bool shadow = false;
  bool default_allow = false;
  bool any_source_ip = false;  // parse the client address only when a principal needs it
  std::vector<Role> roles;
  std::vector<Binding> bindings;
};

bool matches(const Principal& p, const Exchange& ex, const std::optional<boost::asio::ip::address>& ip) {
  switch (p.kind) {
    case Principal::Kind::any: return true;
    case Principal::Kind::authenticated: return !ex.peer_identity.empty() || ex.jwt != nullptr;
    case Principal::Kind::identity: return !ex.peer_identity.empty() && core::glob_match(p.pattern, ex.peer_identity);
    case Principal::Kind::jwt_claim: return ex.jwt && ex.jwt->contains(p.pattern, p.claim_value);
    case Principal::Kind::source_ip: return ip && p.cidr.contains(*ip);
  }
  return false;
}

// One worker's view: the policy and this worker's counters for each policy.
class RbacFilter final : public Filter {
 public:
  RbacFilter(std::shared_ptr<const Policy> policy, std::vector<observability::RbacSlice*> slices, std::string listener,
             AuditSink* audit)
      : policy_(std::move(policy)), slices_(std::move(slices)), listener_(std::move(listener)), audit_(audit) {}

  std::optional<LocalResponse> on_request(Exchange& ex) override {
    const auto& p = *policy_;
    const auto path = path_of(ex.request.target());
    if (has_encoded_separator(path)) return LocalResponse{400, "bad request path\n", "bad_request"};
    const auto method = ex.request.method_string();
    std::optional<boost::asio::ip::address> ip;
    if (p.any_source_ip) {
      boost::system::error_code ec;
      const auto a = boost::asio::ip::make_address(ex.downstream_ip, ec);
      if (!ec) ip = a.is_v6() && a.to_v6().is_v4_mapped() ? boost::asio::ip::address(boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6())) : a;
    }
    std::size_t policy = p.roles.size();  // "default"
    for (const auto& b : p.bindings) {
      const auto& role = p.roles[b.role];
      if (!std::any_of(role.permissions.begin(), role.permissions.end(),
                       [&](const Permission& perm) { return perm.permits(method, path); }))
        continue;
      if (std::any_of(b.principals.begin(), b.principals.end(), [&](const Principal& pr) { return matches(pr, ex, ip); })) {
        policy = b.role;
        break;
      }
    }
    const bool allow = policy < p.roles.size() || p.default_allow;
    auto* slice = slices_[policy];
    if (slice) (p.shadow ? (allow ? slice->shadow_allowed : slice->shadow_denied) : (allow ? slice->allowed : slice->denied)).inc();
    if (allow) return std::nullopt;
    audit(ex, method, path, policy < p.roles.size() ? std::string_view(p.roles[policy].name) : "default");
    if (p.shadow) return std::nullopt;
    return LocalResponse{403, "RBAC: access denied\n", "rbac_denied"};
  }

 private:
  void audit(const Exchange& ex, std::string_view method, std::string_view path, std::string_view policy) {
    std::string_view subject;
    if (ex.jwt) {
      if (const auto* s = ex.jwt->payload.if_contains("sub"); s && s->is_string()) subject = s->as_string();
    }
    const auto line = fmt::format("rbac {} listener={} identity={} jwt_sub={} source_ip={} method={} path=\"{}\" policy={}",
                                  policy_->shadow ? "shadow_deny" : "deny", listener_,
                                  ex.peer_identity.empty() ? "-" : ex.peer_identity, subject.empty() ? "-" : subject,
                                  ex.downstream_ip, method, path, policy);
    (*audit_)(line);
  }

  std::shared_ptr<const Policy> policy_;
  std::vector<observability::RbacSlice*> slices_;  // per role, then "default"; null without stats
  std::string listener_;
  AuditSink* audit_;
};

class RbacFactory final : public FilterFactory {
 public:
  RbacFactory(std::shared_ptr<const Policy> policy, const FilterContext& context, AuditSink audit)
      : policy_(std::move(policy)), listener_(context.listener), audit_(std::move(audit)) {
    if (context.stats) {
      for (const auto& r : policy_->roles) series_.push_back(context.stats->rbac_policy(r.name));
      series_.push_back(context.stats->rbac_policy("default"));
    }
  }

  Filter& filter_for_request() override { return filter_for_worker(0, 1); }
  Filter& filter_for_worker(unsigned worker, unsigned) override {
    std::lock_guard lock(mutex_);  // once per worker and config
    if (filters_.size() <= worker) filters_.resize(worker + 1);
    if (!filters_[worker]) {
      std::vector<observability::RbacSlice*> slices(policy_->roles.size() + 1, nullptr);
      for (std::size_t i = 0; i < series_.size(); ++i)
        if (worker < series_[i]->size()) slices[i] = &(*series_[i])[worker];
      filters_[worker] = std::make_unique<RbacFilter>(policy_, std::move(slices), listener_, &audit_);
    }
    return *filters_[worker];
  }

 private:
  std::shared_ptr<const Policy> policy_;
  std::string listener_;
  AuditSink audit_;
  std::vector<observability::PerWorker<observability::RbacSlice>*> series_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<RbacFilter>> filters_;
};

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

std::optional<Cidr> parse_cidr(const std::string& text) {
  const auto slash = text.find('/');
  boost::system::error_code ec;
  const auto addr = boost::asio::ip::make_address(text.substr(0, slash), ec);
  if (ec) return std::nullopt;
  Cidr c;
  c.v6 = addr.is_v6();
  const unsigned max = c.v6 ? 128 : 32;
  c.prefix = max;
  if (slash != std::string::npos) {
    const auto bits = text.substr(slash + 1);
    if (bits.empty() || bits.size() > 3 || bits.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    c.prefix = static_cast<unsigned>(std::stoul(bits));
    if (c.prefix > max) return std::nullopt;
  }
  if (c.v6) {
    c.bytes = addr.to_v6().to_bytes();
  } else {
    const auto b = addr.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), c.bytes.begin());
  }
  return c;
}

std::shared_ptr<const Policy> parse(const config::FilterSpec& spec, std::vector<FilterError>& errors) {
  const auto& n = *spec.node;
  const auto before = errors.size();
  FilterYaml r("rbac", spec.mark, errors);
  r.keys(n, {"type", "mode", "roles", "bindings", "default"}, "rbac");
  auto policy = std::make_shared<Policy>();
  if (const auto m = n["mode"]) {
    const auto v = m.as<std::string>("");
    if (v == "shadow") {
      policy->shadow = true;
    } else if (v != "enforce") {
      r.error(m, "mode: expected enforce or shadow");
    }
  }
  if (const auto d = n["default"]) {
    const auto v = d.as<std::string>("");
    if (v == "allow") {
      policy->default_allow = true;
    } else if (v != "deny") {
      r.error(d, "default: expected deny or allow");
    }
  }
  const auto roles = n["roles"];
  if (!roles || !roles.IsMap()) {
    r.error(roles ? roles : n, "roles: expected a mapping of role names to permission lists");
  } else {
    for (const auto& kv : roles) {
      Role role{kv.first.as<std::string>(), {}};
      const auto where = "roles." + role.name;
      if (!kv.second.IsSequence()) {
        r.error(kv.second, where + ": expected a list of permissions");
        continue;
      }
      for (const auto& perm : kv.second) {
        if (!r.keys(perm, {"methods", "paths"}, where)) continue;
        Permission p;
        p.methods = r.strings(perm["methods"], where + ".methods");
        for (auto& m : p.methods)
          for (auto& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        p.paths = r.strings(perm["paths"], where + ".paths");
        for (const auto& path : p.paths)
          if (path.empty() || (path.front() != '/' && path != "*"))
            r.error(perm["paths"], where + ".paths: '" + path + "' must start with '/' (or be '*')");
        role.permissions.push_back(std::move(p));
      }
      policy->roles.push_back(std::move(role));
    }
  }
  const auto bindings = n["bindings"];
  if (bindings && !bindings.IsSequence()) r.error(bindings, "bindings: expected a list");
  for (std::size_t i = 0; bindings && bindings.IsSequence() && i < bindings.size(); ++i) {
    const auto b = bindings[i];
    const auto where = "bindings[" + std::to_string(i) + "]";
    if (!r.keys(b, {"role", "principals"}, where)) continue;
    Binding binding{policy->roles.size(), {}};
    const auto role_name = b["role"].as<std::string>("");
    for (std::size_t k = 0; k < policy->roles.size(); ++k)
      if (policy->roles[k].name == role_name) binding.role = k;
    if (binding.role == policy->roles.size()) {
      r.error(b["role"] ? b["role"] : b, where + ".role: no role named '" + role_name + "'");
      continue;
    }
    const auto principals = b["principals"];
    if (!principals || !principals.IsSequence() || principals.size() == 0) {
      r.error(principals ? principals : b, where + ".principals: expected a non-empty list");
      continue;
    }
    for (const auto& pn : principals) {
      if (!r.keys(pn, {"identity", "jwt_claim", "source_ip", "any", "authenticated"}, where + ".principals"))
        continue;
      if (pn.size() != 1) {
        r.error(pn, where + ".principals: each principal has exactly one key");
        continue;
      }
      Principal p;
      if (const auto v = pn["identity"]) {
        p.kind = Principal::Kind::identity;
        p.pattern = v.as<std::string>("");
      } else if (const auto c = pn["jwt_claim"]) {
        p.kind = Principal::Kind::jwt_claim;
        if (!r.keys(c, {"name", "contains"}, where + ".principals.jwt_claim")) continue;
        p.pattern = c["name"].as<std::string>("");
        p.claim_value = c["contains"].as<std::string>("");
        if (p.pattern.empty() || p.claim_value.empty())
          r.error(c, where + ".principals.jwt_claim: needs 'name' and 'contains'");
      } else if (const auto s = pn["source_ip"]) {
        p.kind = Principal::Kind::source_ip;
        const auto text = s.as<std::string>("");
        if (auto cidr = parse_cidr(text)) {
          p.cidr = *cidr;
          policy->any_source_ip = true;
        } else {
          r.error(s, where + ".principals.source_ip: '" + text + "' is not an address or CIDR range");
        }
      } else if (const auto a = pn["any"]) {
        p.kind = Principal::Kind::any;
        if (!a.as<bool>(false)) r.error(a, where + ".principals.any: only 'any: true' makes sense");
      } else {
        p.kind = Principal::Kind::authenticated;
        if (!pn["authenticated"].as<bool>(false))
          r.error(pn["authenticated"], where + ".principals.authenticated: only 'authenticated: true' makes sense");
      }
      binding.principals.push_back(std::move(p));
    }
    policy->bindings.push_back(std::move(binding));
  }
  if (errors.size() != before) return nullptr;
  return policy;
}

}  // namespace

std::unique_ptr<FilterFactory> make_rbac_filter(const config::FilterSpec& spec, const FilterContext& context,
                                                std::vector<FilterError>& errors, AuditSink audit) {
  auto policy = parse(spec, errors);
  if (!policy) return nullptr;
  return std::make_unique<RbacFactory>(std::move(policy), context, std::move(audit));
}

std::unique_ptr<FilterFactory> make_rbac_filter(const config::FilterSpec& spec, const FilterContext& context,
                                                std::vector<FilterError>& errors) {
  return make_rbac_filter(spec, context, errors, audit_log());
}

}  // namespace outrigger::http
