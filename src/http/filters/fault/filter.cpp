#include "http/filters/fault/filter.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>
#include <random>

#include "outrigger/http/grpc.hpp"

namespace outrigger::http {

namespace {

using Clock = std::chrono::steady_clock;

// Counts the request as in a fault until its exchange ends (Envoy's
// active_faults), however it ends: answered, reset, or cut short.
class ActiveFault {
 public:
  explicit ActiveFault(std::atomic<std::int64_t>* active) : active_(active) {}
  ~ActiveFault() { active_->fetch_sub(1, std::memory_order_relaxed); }
  ActiveFault(const ActiveFault&) = delete;
  ActiveFault& operator=(const ActiveFault&) = delete;

 private:
  std::atomic<std::int64_t>* active_;
};

// When the router would give up on this request (its route timeout counts
// from the request's start), as the router reckons it.
Clock::time_point route_deadline(const Exchange& ex) {
  auto timeout = ex.control.timeout.value_or(ex.route ? ex.route->timeout : std::chrono::milliseconds(0));
  if (ex.grpc) {
    if (auto it = ex.request.find("grpc-timeout"); it != ex.request.end()) {
      if (const auto t = parse_grpc_timeout(it->value()); t && (timeout.count() == 0 || *t < timeout)) timeout = *t;
    }
  }
  return timeout.count() > 0 ? ex.start + timeout : Clock::time_point::max();
}

// Ends a delay early when the client goes away (an HTTP/2 stream reset):
// its slot in max_active_faults and the worker's timer go back at once.
class DelayWatch final : public Downstream::GoneWatcher {
 public:
  DelayWatch(Downstream& down, boost::asio::steady_timer& timer) : down_(down), timer_(timer) { down_.watch_gone(this); }
  ~DelayWatch() { down_.watch_gone(nullptr); }
  DelayWatch(const DelayWatch&) = delete;
  DelayWatch& operator=(const DelayWatch&) = delete;
  void client_gone() override { timer_.cancel(); }

 private:
  Downstream& down_;
  boost::asio::steady_timer& timer_;
};

}  // namespace

FaultFilter::FaultFilter(std::shared_ptr<const FaultConfig> config, unsigned worker)
    : config_(std::move(config)), random_(std::random_device{}() ^ (std::uint64_t{worker} << 32)) {
  if (config_->delays) delays_ = &(*config_->delays)[worker];
  if (config_->aborts) aborts_ = &(*config_->aborts)[worker];
  if (config_->overflow) overflow_ = &(*config_->overflow)[worker];
}

bool FaultFilter::sample(const FaultPercent& configured, const std::optional<double>& header) {
  if (!header || *header >= configured.percent()) return configured.sample(random_);
  return FaultPercent(*header).sample(random_);
}

awaitable<FilterResult> FaultFilter::on_request(Exchange& ex) {
  const auto& p = config_->policy_for(ex.route);
  if (!all_match(p.headers, ex.request)) co_return std::nullopt;
  const auto& control = ex.control;
  std::optional<std::chrono::milliseconds> delay;
  if (const auto& d = p.delay) {
    if (!d->header) {
      if (d->percent.sample(random_)) delay = d->fixed;
    } else if (control.fault_delay && sample(d->percent, control.fault_delay_percent)) {
      delay = *control.fault_delay;
    }
  }
  int status = 0, grpc_status = -1;
  if (const auto& a = p.abort) {
    if (!a->header) {
      if (a->percent.sample(random_)) {
        status = a->status;
        grpc_status = a->grpc_status;
      }
    } else if ((control.fault_abort_status || control.fault_abort_grpc_status) &&
               sample(a->percent, control.fault_abort_percent)) {
      // Both headers: the HTTP status wins (as Envoy's do).
      if (control.fault_abort_status) {
        status = *control.fault_abort_status;
      } else {
        grpc_status = *control.fault_abort_grpc_status;
      }
    }
  }
  const bool aborting = status != 0 || grpc_status >= 0;
  if (!delay && !aborting) co_return std::nullopt;

  auto* active = config_->active;
  const auto before = active->fetch_add(1, std::memory_order_relaxed);
  if (p.max_active_faults && before >= static_cast<std::int64_t>(p.max_active_faults)) {
    active->fetch_sub(1, std::memory_order_relaxed);
    if (overflow_) overflow_->inc();
    co_return std::nullopt;
  }
  ex.state.emplace<ActiveFault>(active);

  if (delay) {
    if (delays_) delays_->inc();
    // On a timer of this worker: its other requests go on meanwhile. The
    // route's timeout ends the delay (the router would answer 504 then anyway).
    const auto until = Clock::now() + *delay;
    const auto deadline = route_deadline(ex);
    auto executor = co_await boost::asio::this_coro::executor;
    boost::asio::steady_timer timer(executor, std::min(until, deadline));
    {
      const DelayWatch watch(ex.downstream, timer);
      if (!ex.downstream.client_gone())
        co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }
    if (ex.downstream.client_gone()) {
      ex.error = ProxyError::downstream_reset;  // nothing is sent; the upstream never sees it
      co_return local_reply_for(ex.error);
    }
    if (deadline < until) {
      ex.error = ProxyError::timeout;
      co_return local_reply_for(ProxyError::timeout);
    }
  }
  if (!aborting) co_return std::nullopt;
  if (aborts_) aborts_->inc();
  LocalReply reply{status, "fault filter abort\n", "fault_abort"};
  if (grpc_status >= 0) {
    reply.status = 200;
    reply.body = "fault filter abort";  // the grpc-message
    reply.grpc_status = grpc_status;
  }
  co_return reply;
}

}  // namespace outrigger::http
