#pragma once

#include "outrigger/http/filter.hpp"

namespace outrigger::http {

// Stateless: the trace context goes on the exchange's record, where the
// router and the span builders read it.
class TracingFilter final : public Filter {
 public:
  awaitable<FilterResult> on_request(Exchange& ex) override;
};

}  // namespace outrigger::http
