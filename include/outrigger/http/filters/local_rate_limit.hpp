// The `local_rate_limit` filter: token buckets, refilled at tokens_per_second
// up to burst, one per key (none: one bucket; source_ip; a request header;
// peer_identity: the mTLS caller's identity, callers without one sharing one
// bucket). A request that finds its bucket empty is answered 429 with
// `retry-after` (whole seconds until a token is back).
//
// Each worker has its own buckets with an equal share of the rate and the
// burst (at least one token each): no lock and no shared cache line, at the
// price of a limit that is exact per worker and approximate per process (a
// client whose connections all land on one worker gets 1/workers of the rate).
// Keys are capped (max_keys per worker): past it, idle full buckets are
// forgotten, and if none is, new keys share one overflow bucket.
#pragma once

#include <memory>
#include <vector>

#include "outrigger/http/filter.hpp"

namespace outrigger::http {

std::unique_ptr<FilterFactory> make_local_rate_limit_filter(const config::FilterSpec& spec, const FilterContext& context,
                                                             std::vector<FilterError>& errors);

}  // namespace outrigger::http
