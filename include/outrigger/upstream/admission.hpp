// Every limit a cluster puts on what is sent to it, in one place: the classic
// breaker (admit, then the call's outcome) and Envoy's thresholds, counted
// for the whole cluster across workers in observability::ClusterLoad
// (atomic adds, never a lock): max_requests and max_retries per request,
// max_connections and max_pending_requests for the pools.
//
// One Admission per cluster and config; the counters it moves belong to the
// cluster's name and outlive any config, so that a connection opened under
// one config gives its slot back correctly under the next.
#pragma once

#include <chrono>
#include <memory>

#include "outrigger/config/config.hpp"
#include "outrigger/http/local_reply.hpp"
#include "outrigger/observability/stats.hpp"
#include "outrigger/upstream/breaker.hpp"

namespace outrigger::upstream {

class Admission {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Verdict { admitted, breaker_open, overflow };

  Admission(const config::Cluster& config, observability::ClusterStats& stats);
  ~Admission();

  // One admitted request: it holds a max_requests slot, and a max_retries
  // slot once it retries, until it is destroyed.
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& o) noexcept { *this = std::move(o); }
    Ticket& operator=(Ticket&& o) noexcept;
    ~Ticket() { release(); }

    // A retry, if max_retries allows one now (counted as overflow otherwise).
    bool take_retry();
    // The call is over: its outcome goes to the breaker (once).
    void finish(int status, http::ProxyError error, Clock::time_point now, Clock::duration elapsed);

   private:
    friend class Admission;
    void release();
    Admission* admission_ = nullptr;
    observability::ClusterSlice* stats_ = nullptr;
    CircuitBreaker::Admission breaker_ = CircuitBreaker::Admission::allowed;
    bool holds_retry_ = false;
    bool finished_ = false;
  };

  // The breaker first (an open one refuses at once, without touching the
  // upstream), then max_requests. `stats`: the calling worker's slice.
  Verdict admit(Ticket& out, Clock::time_point now, observability::ClusterSlice& stats);

  // A connection slot (max_connections), cluster-wide; give it back with
  // release_connection (through the cluster's load, see above).
  bool take_connection();
  static void release_connection(observability::ClusterLoad& load) {
    load.connections.fetch_sub(1, std::memory_order_relaxed);
  }
  // A place in the pending queue (max_pending_requests); false when full
  // (counted as overflow).
  bool join_queue(observability::ClusterSlice& stats);
  void leave_queue();

  CircuitBreaker* breaker() const { return breaker_.get(); }
  const config::CircuitBreakers& limits() const { return limits_; }
  observability::ClusterLoad& load() const { return load_; }

 private:
  config::CircuitBreakers limits_;
  observability::ClusterLoad& load_;
  std::unique_ptr<CircuitBreaker> breaker_;
};

}  // namespace outrigger::upstream
