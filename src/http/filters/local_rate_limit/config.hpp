// The `local_rate_limit` filter: token buckets, refilled at tokens_per_second
// up to burst, one per key (none: one bucket; source_ip; a request header;
// peer_identity: the mTLS caller's identity, callers without one sharing one
// bucket). A request that finds its bucket empty is answered 429 with
// `retry-after` (whole seconds until a token is back). Decisions are counted
// in outrigger_ratelimit_decisions_total{direction,listener,decision}.
//
// Each worker has its own buckets with an equal share of the rate and the
// burst (at least one token each): no lock and no shared cache line, at the
// price of a limit that is exact per worker and approximate per process (a
// client whose connections all land on one worker gets 1/workers of the rate).
// Keys are capped (max_keys per worker): past it, idle full buckets are
// forgotten, and if none is, new keys share one overflow bucket.
#pragma once

#include <memory>
#include <string>

#include "outrigger/http/filter.hpp"
#include "outrigger/observability/stats.hpp"

namespace outrigger::http {

struct LocalRateLimitConfig {
  enum class Key { none, source_ip, header, peer_identity };
  double tokens_per_second = 0;
  double burst = 0;
  Key key = Key::none;
  std::string header;  // lower case, for Key::header
  std::size_t max_keys = 10000;
  unsigned workers = 1;
  // The decision counters (null in tests without a registry).
  observability::PerWorker<observability::Counter>* allowed = nullptr;
  observability::PerWorker<observability::Counter>* limited = nullptr;
};

std::unique_ptr<FilterFactory> make_local_rate_limit_factory(const config::FilterSpec& spec,
                                                             const FilterContext& context, config::YamlReader& yaml);

}  // namespace outrigger::http
