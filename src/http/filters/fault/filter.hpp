#pragma once

#include "http/filters/fault/config.hpp"

namespace outrigger::http {

// One worker's fault filter: its own random numbers, no lock.
class FaultFilter final : public Filter {
 public:
  FaultFilter(std::shared_ptr<const FaultConfig> config, unsigned worker);
  awaitable<FilterResult> on_request(Exchange& ex) override;

 private:
  // The share `configured` (a header's own percentage may lower it, never raise it).
  bool sample(const FaultPercent& configured, const std::optional<double>& header);

  std::shared_ptr<const FaultConfig> config_;
  core::Random random_;
  observability::Counter* delays_ = nullptr;
  observability::Counter* aborts_ = nullptr;
  observability::Counter* overflow_ = nullptr;
};

}  // namespace outrigger::http
