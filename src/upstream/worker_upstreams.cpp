#include "outrigger/upstream/worker_upstreams.hpp"

#include <random>

namespace outrigger::upstream {

WorkerUpstreams::WorkerUpstreams(boost::asio::any_io_executor ex, core::DeadlineQueue& deadlines, unsigned worker,
                                 unsigned workers)
    : ex_(std::move(ex)),
      deadlines_(deadlines),
      worker_(worker),
      workers_(workers),
      random_(std::random_device{}() ^ (std::uint64_t(worker) << 48)) {}

WorkerUpstreams::~WorkerUpstreams() {
  // Pools still alive belong to pipelines that outlive this object by
  // mistake; unlink them so that their destruction touches nothing here.
  pools_.clear();
  connections_.clear();
}

std::shared_ptr<ClusterPools> WorkerUpstreams::pools_for(const Cluster& cluster) {
  auto& slot = latest_[cluster.name()];
  if (auto p = slot.lock(); p && p->serves(cluster.config(), cluster.endpoints())) return p;
  auto p = std::make_shared<ClusterPools>(*this, cluster, random_.next());
  if (stopped_) p->shutdown();
  slot = p;
  return p;
}

std::size_t WorkerUpstreams::sweep(std::chrono::steady_clock::time_point now) {
  std::size_t purged = 0;
  for (auto& p : pools_) purged += p.sweep(now);
  std::erase_if(latest_, [](const auto& kv) { return kv.second.expired(); });
  return purged;
}

void WorkerUpstreams::shutdown() {
  stopped_ = true;
  for (auto& p : pools_) p.shutdown();
  for (auto& c : connections_) {
    boost::system::error_code ec;
    c.codec.stream().socket().close(ec);
  }
}

std::size_t WorkerUpstreams::open_connections() const {
  std::size_t n = 0;
  for (const auto& c : connections_)
    if (const_cast<UpstreamConnection&>(c).codec.stream().socket().is_open()) ++n;
  return n;
}

}  // namespace outrigger::upstream
