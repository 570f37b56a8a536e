#pragma once

#include <optional>

#include <boost/asio/ip/address.hpp>

#include "http/filters/rbac/config.hpp"

namespace outrigger::http {

// One worker's view: the shared policy and this worker's counters.
class RbacFilter final : public Filter {
 public:
  RbacFilter(std::shared_ptr<const RbacPolicy> policy, unsigned worker);
  awaitable<FilterResult> on_request(Exchange& ex) override;

 private:
  struct Counters {
    observability::Counter *allowed = nullptr, *denied = nullptr, *shadow_allowed = nullptr, *shadow_denied = nullptr;
  };
  bool matches(const RbacPolicy::Principal& p, const Exchange& ex, const std::optional<boost::asio::ip::address>& ip) const;
  void audit(const Exchange& ex, std::string_view method, std::string_view path, std::string_view policy) const;

  std::shared_ptr<const RbacPolicy> policy_;
  std::vector<Counters> counters_;  // per role, then "default"
};

}  // namespace outrigger::http
