#pragma once

#include <optional>

#include <boost/asio/ip/address.hpp>

#include "http/filters/rbac/config.hpp"

namespace outrigger::http {

struct JwtClaims;

// One worker's view: the shared policy and this worker's counters.
class RbacFilter final : public Filter {
 public:
  RbacFilter(std::shared_ptr<const RbacPolicy> policy, unsigned worker);
  awaitable<FilterResult> on_request(Exchange& ex) override;
  bool on_connection(std::string_view peer_identity, std::string_view client_ip) override;

 private:
  struct Counters {
    observability::Counter *allowed = nullptr, *denied = nullptr, *shadow_allowed = nullptr, *shadow_denied = nullptr;
  };
  bool matches(const RbacPolicy::Principal& p, std::string_view identity, const JwtClaims* claims,
               const std::optional<boost::asio::ip::address>& ip) const;
  // The policy (a role index, or roles.size() for "default") that decides,
  // and whether it allows; counted.
  std::pair<std::size_t, bool> decide(std::string_view method, std::string_view path, std::string_view identity,
                                      const JwtClaims* claims, std::string_view client_ip);
  void audit(std::string_view identity, const JwtClaims* claims, std::string_view client_ip,
             std::string_view method, std::string_view path, std::string_view policy) const;

  std::shared_ptr<const RbacPolicy> policy_;
  std::vector<Counters> counters_;  // per role, then "default"
};

}  // namespace outrigger::http
