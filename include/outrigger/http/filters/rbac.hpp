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

#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "outrigger/http/filter.hpp"

namespace outrigger::http {

std::unique_ptr<FilterFactory> make_rbac_filter(const config::FilterSpec& spec, const FilterContext& context,
                                                std::vector<FilterError>& errors);

// For tests: the same, with the audit lines handed to `audit` instead of the log.
using AuditSink = std::function<void(std::string_view line)>;
std::unique_ptr<FilterFactory> make_rbac_filter(const config::FilterSpec& spec, const FilterContext& context,
                                                std::vector<FilterError>& errors, AuditSink audit);

}  // namespace outrigger::http
