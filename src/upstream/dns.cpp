#include "outrigger/upstream/dns.hpp"

#include <ares.h>
#include <netdb.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstring>
#include <mutex>

#include "outrigger/observability/stats.hpp"

namespace outrigger::upstream {

namespace asio = boost::asio;

// ---- the resolver: c-ares on an io_context ---------------------------------
//
// c-ares says which sockets it wants watched (the socket-state callback);
// each gets a stream_descriptor that waits for readiness and hands the socket
// back to ares_process_fd. A timer wakes c-ares for its own timeouts. The
// descriptors never own the sockets: c-ares opens and closes them, and tells
// us first, so the descriptor is released before the close.

struct DnsResolver::Impl : std::enable_shared_from_this<Impl> {
  struct Watch {
    asio::posix::stream_descriptor descriptor;
    bool want_read = false, want_write = false;
    bool reading = false, writing = false;
    bool closed = false;
    explicit Watch(asio::io_context& io, int fd) : descriptor(io, fd) {}
  };
  struct Query {
    std::weak_ptr<Impl> owner;
    config::DnsLookupFamily family;
    std::function<void(DnsAnswer)> done;
  };

  asio::io_context& io;
  ares_channel channel = nullptr;
  asio::steady_timer timer;
  std::map<ares_socket_t, std::shared_ptr<Watch>> watches;
  bool destroying = false;

  explicit Impl(asio::io_context& i) : io(i), timer(i) {}

  static void socket_state(void* data, ares_socket_t fd, int readable, int writable) {
    auto* self = static_cast<Impl*>(data);
    auto it = self->watches.find(fd);
    if (!readable && !writable) {  // c-ares is about to close it
      if (it == self->watches.end()) return;
      auto w = it->second;
      w->closed = true;
      boost::system::error_code ec;
      w->descriptor.cancel(ec);
      w->descriptor.release();
      self->watches.erase(it);
      return;
    }
    if (it == self->watches.end()) it = self->watches.emplace(fd, std::make_shared<Watch>(self->io, fd)).first;
    it->second->want_read = readable;
    it->second->want_write = writable;
    if (!self->destroying) self->arm(fd, it->second);
  }

  void arm(ares_socket_t fd, const std::shared_ptr<Watch>& w) {
    auto self = shared_from_this();
    if (w->want_read && !w->reading) {
      w->reading = true;
      w->descriptor.async_wait(asio::posix::descriptor_base::wait_read, [self, w, fd](boost::system::error_code ec) {
        w->reading = false;
        if (ec || w->closed || self->destroying) return;
        ares_process_fd(self->channel, fd, ARES_SOCKET_BAD);
        if (!w->closed) self->arm(fd, w);
        self->schedule();
      });
    }
    if (w->want_write && !w->writing) {
      w->writing = true;
      w->descriptor.async_wait(asio::posix::descriptor_base::wait_write, [self, w, fd](boost::system::error_code ec) {
        w->writing = false;
        if (ec || w->closed || self->destroying) return;
        ares_process_fd(self->channel, ARES_SOCKET_BAD, fd);
        if (!w->closed) self->arm(fd, w);
        self->schedule();
      });
    }
  }

  // Wakes c-ares when its next timeout is due (retries, giving up).
  void schedule() {
    timeval max{1, 0}, tv{};
    const timeval* next = ares_timeout(channel, &max, &tv);
    timer.expires_after(std::chrono::seconds(next->tv_sec) + std::chrono::microseconds(next->tv_usec));
    timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->destroying) return;
      ares_process_fd(self->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
      self->schedule();
    });
  }

  static void answered(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
    std::unique_ptr<Query> q(static_cast<Query*>(arg));
    auto owner = q->owner.lock();
    DnsAnswer a;
    if (status == ARES_SUCCESS && result) {
      std::vector<asio::ip::address> all;
      int ttl = -1;
      for (auto* n = result->nodes; n; n = n->ai_next) {
        if (n->ai_family == AF_INET) {
          const auto* sa = reinterpret_cast<const sockaddr_in*>(n->ai_addr);
          asio::ip::address_v4::bytes_type b;
          std::memcpy(b.data(), &sa->sin_addr, b.size());
          all.emplace_back(asio::ip::address_v4(b));
        } else if (n->ai_family == AF_INET6) {
          const auto* sa = reinterpret_cast<const sockaddr_in6*>(n->ai_addr);
          asio::ip::address_v6::bytes_type b;
          std::memcpy(b.data(), &sa->sin6_addr, b.size());
          all.emplace_back(asio::ip::address_v6(b));
        } else {
          continue;
        }
        if (ttl < 0 || n->ai_ttl < ttl) ttl = n->ai_ttl;
      }
      a.addresses = filter_family(all, q->family);
      a.status = a.addresses.empty() ? DnsAnswer::Status::empty : DnsAnswer::Status::ok;
      a.ttl = std::chrono::seconds(std::max(ttl, 0));
    } else if (status == ARES_ENOTFOUND || status == ARES_ENODATA) {
      a.status = DnsAnswer::Status::empty;
      a.error = ares_strerror(status);
    } else {
      a.status = DnsAnswer::Status::failure;
      a.error = ares_strerror(status);
    }
    if (result) ares_freeaddrinfo(result);
    // Destroying the channel ends what is pending; nobody waits for those.
    if (!owner || owner->destroying || status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) return;
    // Call back outside c-ares' own processing, so that the callback may
    // start the next lookup on this channel.
    asio::post(owner->io, [done = std::move(q->done), a = std::move(a)]() mutable { done(std::move(a)); });
  }
};

namespace {
void init_library() {
  static std::once_flag once;
  std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
}
}  // namespace

DnsResolver::DnsResolver(asio::io_context& io, const std::vector<core::Address>& servers, config::Duration timeout)
    : impl_(std::make_shared<Impl>(io)) {
  init_library();
  ares_options opts{};
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  opts.sock_state_cb = &Impl::socket_state;
  opts.sock_state_cb_data = impl_.get();
  // Two tries, the second with twice the time (c-ares doubles it): the
  // whole lookup takes about three times the first try's timeout.
  opts.timeout = static_cast<int>(std::max<std::int64_t>(timeout.count() / 3, 5));
  opts.tries = 2;
  if (const int rc = ares_init_options(&impl_->channel, &opts, mask); rc != ARES_SUCCESS)
    throw std::runtime_error(std::string("dns: cannot start a resolver: ") + ares_strerror(rc));
  if (!servers.empty()) {
    std::string csv;
    for (const auto& s : servers) {
      if (!csv.empty()) csv += ',';  // in two steps: see resolver_for
      csv += s.to_string();
    }
    if (const int rc = ares_set_servers_ports_csv(impl_->channel, csv.c_str()); rc != ARES_SUCCESS) {
      ares_destroy(impl_->channel);
      throw std::runtime_error("dns: bad name servers '" + csv + "': " + ares_strerror(rc));
    }
  }
}

DnsResolver::~DnsResolver() {
  impl_->destroying = true;
  impl_->timer.cancel();
  ares_destroy(impl_->channel);  // closes its sockets (releasing our descriptors first)
  for (auto& [fd, w] : impl_->watches) {
    w->closed = true;
    boost::system::error_code ec;
    w->descriptor.cancel(ec);
    w->descriptor.release();
  }
  impl_->watches.clear();
}

void DnsResolver::resolve(const std::string& host, config::DnsLookupFamily family,
                          std::function<void(DnsAnswer)> done) {
  ares_addrinfo_hints hints{};
  hints.ai_family = family == config::DnsLookupFamily::v4_only   ? AF_INET
                    : family == config::DnsLookupFamily::v6_only ? AF_INET6
                                                                 : AF_UNSPEC;
  // The answer's order, not c-ares' RFC 6724 sort (which probes each address
  // with a UDP connect).
  hints.ai_flags = ARES_AI_NOSORT;
  auto* q = new Impl::Query{impl_, family, std::move(done)};
  ares_getaddrinfo(impl_->channel, host.c_str(), nullptr, &hints, &Impl::answered, q);
  if (!impl_->destroying) impl_->schedule();
}

std::vector<asio::ip::address> filter_family(const std::vector<asio::ip::address>& all,
                                             config::DnsLookupFamily family) {
  using F = config::DnsLookupFamily;
  std::vector<asio::ip::address> v4, v6;
  for (const auto& a : all) (a.is_v4() ? v4 : v6).push_back(a);
  switch (family) {
    case F::v4_only:
      return v4;
    case F::v6_only:
      return v6;
    case F::v4_preferred:
      return v4.empty() ? v6 : v4;
    case F::auto_:
      return v6.empty() ? v4 : v6;
    case F::all:
      break;
  }
  return all;
}

// ---- the refresher -----------------------------------------------------------

struct DnsRefresher::Target {
  std::string cluster, host;
  config::Dns dns;
  bool logical = false;
  bool answered = false;
  bool failing = false;
  observability::ClusterStats* stats = nullptr;
  asio::steady_timer timer;
  std::uint64_t generation = 0;  // of its lookup in flight: an answer for another is ignored
  Target(asio::io_context& io) : timer(io) {}
};

DnsRefresher::DnsRefresher(asio::io_context& io, observability::Stats& stats, std::function<void()> changed)
    : io_(io), stats_(stats), changed_(std::move(changed)) {}

DnsRefresher::~DnsRefresher() { stop(); }

void DnsRefresher::stop() {
  stopped_ = true;
  *alive_ = false;
  for (auto& [key, t] : targets_) t->timer.cancel();
  targets_.clear();
  resolvers_.clear();
}

bool DnsRefresher::initialized() const {
  if (change_posted_) return false;  // an answer not yet built into a snapshot
  return std::all_of(targets_.begin(), targets_.end(), [](const auto& kv) { return kv.second->answered; });
}

DnsResolver& DnsRefresher::resolver_for(const config::Dns& dns) {
  std::string key = std::to_string(dns.timeout.count());
  for (const auto& s : dns.resolvers) {
    key += ' ';  // in two steps: GCC 12 -O3 warns wrongly (stringop-overflow) about " " + string
    key += s.to_string();
  }
  auto& r = resolvers_[key];
  if (!r) r = std::make_unique<DnsResolver>(io_, dns.resolvers, dns.timeout);
  return *r;
}

void DnsRefresher::sync(const config::Config& config) {
  if (stopped_) return;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Target>> next;
  DnsTable table;
  for (const auto& c : config.clusters) {
    if (c.type == config::ClusterType::static_) continue;
    for (const auto& e : c.endpoints) {
      boost::system::error_code ec;
      asio::ip::make_address(e.address.host, ec);
      if (!ec) continue;  // an IP address needs no lookup
      const std::pair key{c.name, e.address.host};
      if (next.count(key)) continue;
      auto old = targets_.find(key);
      const bool logical = c.type == config::ClusterType::logical_dns;
      if (old != targets_.end() && old->second->dns == c.dns && old->second->logical == logical) {
        next.emplace(key, std::move(old->second));
        if (auto it = table_.find(c.name); it != table_.end())
          if (auto h = it->second.find(e.address.host); h != it->second.end()) table[c.name][h->first] = h->second;
        continue;
      }
      auto t = std::make_unique<Target>(io_);
      t->cluster = c.name;
      t->host = e.address.host;
      t->dns = c.dns;
      t->logical = logical;
      t->stats = stats_.cluster(c.name);
      t->stats->dns.store(true, std::memory_order_relaxed);
      // Settings changed: what the old lookups found serves until the new ones answer.
      if (auto it = table_.find(c.name); it != table_.end())
        if (auto h = it->second.find(e.address.host); h != it->second.end()) {
          table[c.name][h->first] = h->second;
          t->answered = true;
        }
      start(*t);
      next.emplace(key, std::move(t));
    }
  }
  for (auto& [key, t] : targets_)
    if (t) t->timer.cancel();
  targets_ = std::move(next);
  table_ = std::move(table);
}

void DnsRefresher::start(Target& t) {
  const auto generation = t.generation = ++generations_;
  Target* target = &t;
  resolver_for(t.dns).resolve(t.host, t.dns.lookup_family, [this, alive = alive_, target, generation](DnsAnswer a) {
    if (!*alive) return;
    // The target may be gone (a reload dropped the cluster): find it again.
    for (auto& [key, t] : targets_)
      if (t.get() == target && t->generation == generation) return answered(*t, std::move(a));
  });
}

void DnsRefresher::answered(Target& t, DnsAnswer a) {
  using S = DnsAnswer::Status;
  auto& counter = a.status == S::ok ? t.stats->dns_ok : a.status == S::empty ? t.stats->dns_empty : t.stats->dns_failed;
  counter.fetch_add(1, std::memory_order_relaxed);
  t.answered = true;
  auto next_in = t.dns.refresh_rate;
  if (a.status == S::failure) {
    // The last good addresses keep serving; say so once per failing streak.
    if (!t.failing)
      spdlog::warn("dns: cluster {}: cannot resolve {} ({}); keeping its last addresses", t.cluster, t.host, a.error);
    t.failing = true;
  } else {
    t.failing = false;
    auto& current = table_[t.cluster][t.host];
    auto found = std::move(a.addresses);
    if (t.logical) {
      // One address: the current one while the answer still holds it, so
      // that DNS round robin does not move the connections at every lookup.
      if (!found.empty()) {
        const bool kept = !current.empty() && std::find(found.begin(), found.end(), current.front()) != found.end();
        found = {kept ? current.front() : found.front()};
      }
    } else {
      std::sort(found.begin(), found.end());  // answers rotate; the set is what counts
    }
    if (found != current) {
      std::string list;
      for (const auto& x : found) {
        if (!list.empty()) list += ", ";  // in two steps: see resolver_for
        list += x.to_string();
      }
      spdlog::info("dns: cluster {}: {} is now [{}]", t.cluster, t.host, list);
      current = std::move(found);
      if (!change_posted_) {
        change_posted_ = true;
        asio::post(io_, [this, alive = alive_] {
          if (!*alive) return;
          change_posted_ = false;
          changed_();
        });
      }
    }
    if (t.dns.respect_ttl && a.ttl.count() > 0)
      next_in = std::min(next_in, std::max<config::Duration>(a.ttl, std::min<config::Duration>(
                                                                     std::chrono::seconds(1), t.dns.refresh_rate)));
  }
  t.timer.expires_after(next_in);
  Target* target = &t;
  t.timer.async_wait([this, alive = alive_, target](boost::system::error_code ec) {
    if (ec || !*alive) return;
    for (auto& [key, t] : targets_)
      if (t.get() == target) return start(*t);
  });
}

}  // namespace outrigger::upstream
