#pragma once

#include "http/filters/jwt_authn/config.hpp"

namespace outrigger::http {

// One worker's filter: its copy of the key-set pointers and its counters.
class JwtAuthnFilter final : public Filter {
 public:
  JwtAuthnFilter(std::shared_ptr<const JwtAuthnConfig> config, unsigned worker);
  awaitable<FilterResult> on_request(Exchange& ex) override;

 private:
  void take_keys();
  LocalReply refuse(const JwtAuthnConfig::Provider& provider, jwt::JwtResult why);
  void count(jwt::JwtResult r) {
    if (auto* c = counters_[static_cast<std::size_t>(r)]) c->inc();
  }

  std::shared_ptr<const JwtAuthnConfig> config_;
  std::vector<std::shared_ptr<const JwtAuthnConfig::KeySet>> sets_;
  std::uint64_t generation_ = 0;
  std::array<observability::Counter*, jwt::kJwtResultNames.size()> counters_{};
};

}  // namespace outrigger::http
