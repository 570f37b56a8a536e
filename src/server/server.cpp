#include "outrigger/server/server.hpp"

#include "outrigger/net/original_dst.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <algorithm>
#include <future>
#include <optional>
#include <map>

#include "outrigger/config/loader.hpp"
#include "outrigger/server/admin.hpp"
#include "outrigger/server/memory_sweep.hpp"
#include "outrigger/server/snapshot.hpp"
#include "outrigger/server/span_reporter.hpp"
#include "outrigger/server/upgrade.hpp"
#include "outrigger/server/worker.hpp"
#include "outrigger/xds/client.hpp"

namespace outrigger::server {

namespace asio = boost::asio;
using asio::ip::tcp;

struct Server::Impl {
  Impl(config::Config c, ServerOptions o)
      : initial(std::move(c)), options(o), stats(std::max(1u, initial.workers)), signals(io) {}

  config::Config initial;
  ServerOptions options;
  UpgradeOptions upgrade_options;
  observability::Stats stats;  // before the workers: they point into it
  asio::io_context io{1};
  asio::signal_set signals;
  asio::steady_timer watch_timer{io};
  observability::MemoryStats memory{std::max(1u, initial.workers)};
  MemorySweep memory_sweep{io, memory};
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<AdminServer> admin;
  std::unique_ptr<UpgradeListener> upgrade;  // --upgrade-socket: the next binary asks here
  std::vector<PassedListener> passable;      // what an upgrade hands on (the fds stay ours)
  KeptUpstreams upstreams;
  std::unique_ptr<SpanReporter> reporter;
  std::unique_ptr<upstream::DnsRefresher> dns;  // DNS clusters' lookups, on this thread
  config::Config file;                   // the config file's own (SIGHUP reloads it): xDS adds to a copy
  std::unique_ptr<xds::Client> xds;      // the `xds:` block's control plane
  std::chrono::steady_clock::time_point started_at;
  std::shared_ptr<const Snapshot> current;
  std::map<std::string, std::uint16_t, std::less<>> ports;
  bool started = false;
  bool draining = false;
  bool inbound_first = false;  // draining the inbound side only, so far
  std::optional<std::chrono::steady_clock::time_point> outbound_quiet_since;
  bool stopped = false;

  void wait_signal();
  void watch_files();
  // `from_xds`: a control plane's update (not counted as a reload).
  std::vector<std::string> do_reload(config::Config next, bool from_xds = false);
  std::vector<std::string> apply_xds(const xds::Dynamic& dynamic);
  // A new config from the file (SIGHUP, Server::reload): what the control plane gave stays.
  std::vector<std::string> reload_file(config::Config next);
  bool xds_ready() const;
  void dns_changed();
  // `everything`: both sides at once (the application said it is done).
  void do_drain(bool everything);
  void finish_drain(std::chrono::steady_clock::time_point deadline);
  bool sidecar() const;
  void bind_listeners(UpgradeClient* inherit);
  AdminServer::Hooks admin_hooks();
  void listen_for_upgrades(const std::string& path, bool replace);
  void hand_off(int pid);
};

namespace {

tcp::endpoint endpoint_of(const core::Address& a) {
  return tcp::endpoint(asio::ip::make_address(a.host), a.port);
}

// The file's config with what the control plane sent (docs/xds.md): the
// file's clusters stay and are never replaced; a cluster a route names that
// neither has (yet) is an empty one, answering 503 until it comes.
std::vector<std::string> merge_xds(config::Config& c, const xds::Dynamic& dynamic) {
  std::vector<std::string> errors;
  if (!c.xds) return errors;
  for (const auto& cl : dynamic.clusters) {
    if (c.find_cluster(cl.name)) {
      errors.push_back("Cluster '" + cl.name + "': the config file has a cluster of that name, which the control "
                       "plane cannot replace");
      continue;
    }
    c.clusters.push_back(cl);
    c.clusters.back().from_xds = true;
  }
  auto expect = [&](const std::string& name) {
    if (name.empty() || c.find_cluster(name)) return;
    config::Cluster placeholder;
    placeholder.name = name;
    placeholder.from_xds = true;
    c.clusters.push_back(std::move(placeholder));
  };
  for (const auto& l : c.listeners) {
    for (const auto& r : l.routes) {
      expect(r.cluster);
      for (const auto& w : r.weighted_clusters) expect(w.cluster);
      if (r.fallback) expect(r.fallback->cluster);
    }
  }
  c.xds->clusters_version = dynamic.clusters_version;
  c.xds->endpoints_version = dynamic.endpoints_version;
  return errors;
}

// What a reload cannot change without a restart.
std::vector<std::string> restart_only_changes(const config::Config& from, const config::Config& to) {
  std::vector<std::string> why;
  auto problem = [&](const std::string& what) {
    why.push_back(config::Diagnostic{to.file, {}, what + " changed; this needs a restart (reload rejected)"}.to_string());
  };
  if (from.workers != to.workers) problem("workers");
  if (from.admin.enabled != to.admin.enabled || from.admin.address != to.admin.address) problem("admin");
  bool same = from.listeners.size() == to.listeners.size();
  for (std::size_t i = 0; same && i < from.listeners.size(); ++i) {
    same = from.listeners[i].name == to.listeners[i].name && from.listeners[i].address == to.listeners[i].address;
  }
  if (!same) problem("the set of listeners (names or addresses)");
  return why;
}

// The overload limits in force, for the scrape.
void show_limits(observability::Stats& stats, const config::Config& c) {
  stats.overload().max_downstream_connections.store(c.overload.max_downstream_connections);
  stats.overload().max_requests_per_worker.store(c.overload.max_requests_per_worker);
}

}  // namespace

Server::Server(config::Config config, ServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(config), options)) {}

Server::~Server() {
  impl_->reporter.reset();
  impl_->dns.reset();
  impl_->workers.clear();  // each stops, closes what it owns on its own thread, and joins
  impl_->current.reset();
  impl_->upstreams = {};
}

void Server::set_upgrade(const UpgradeOptions& options) { impl_->upgrade_options = options; }

void Server::start() {
  auto& s = *impl_;
  const unsigned n = std::max(1u, s.initial.workers);
  for (unsigned i = 0; i < n; ++i)
    s.workers.push_back(std::make_unique<Worker>(i, n, s.stats.overload(), s.memory.workers[i]));

  s.upstreams.checks_on = s.io.get_executor();
  s.dns = std::make_unique<upstream::DnsRefresher>(s.io, s.stats, [&s] { s.dns_changed(); });
  s.upstreams.dns = &s.dns->table();
  s.file = s.initial;
  auto first = s.initial;
  merge_xds(first, {});
  auto built = build_snapshot(std::move(first), s.stats, n, s.upstreams);
  if (!built.snapshot) {
    std::string all;
    for (const auto& e : built.errors) all += e + "\n";
    throw std::runtime_error(all);
  }
  s.current = built.snapshot;
  show_limits(s.stats, s.current->config);
  net::set_upstream_mark(s.current->config.socket_mark);
  s.dns->sync(s.current->config);

  // Validated, now the sockets: the running process's (an upgrade), or new ones.
  std::unique_ptr<UpgradeClient> inherit;
  if (!s.upgrade_options.from.empty()) {
    if (const auto& next = s.upgrade_options.socket; !next.empty()) {
      if (auto why = upgrade_path_problem(next); !why.empty())
        throw std::runtime_error("upgrade socket " + next + ": " + why);
    }
    inherit = std::make_unique<UpgradeClient>(s.upgrade_options.from, s.upgrade_options.timeout);
    inherit->receive();
  }
  s.bind_listeners(inherit.get());
  const std::string upgrade_path = s.upgrade_options.socket.empty() ? s.upgrade_options.from : s.upgrade_options.socket;
  // Not yet listening for the next upgrade when this is one: the path is the
  // old process's until it has let go.
  if (!upgrade_path.empty() && !inherit) s.listen_for_upgrades(upgrade_path, false);
  for (auto& w : s.workers) w->start(s.current);
  s.reporter = std::make_unique<SpanReporter>(s.io, [&s] { return s.current; });
  s.reporter->start();
  s.watch_files();
  s.memory_sweep.start();
  s.started_at = std::chrono::steady_clock::now();
  if (const auto& x = s.initial.xds) {
    s.xds = std::make_unique<xds::Client>(
        s.io, *x,
        [&s](const std::string& name) -> std::shared_ptr<const upstream::Cluster> {
          for (const auto& c : s.current->clusters)
            if (c->name() == name) return c;
          return nullptr;
        },
        [&s](const xds::Dynamic& dynamic) { return s.apply_xds(dynamic); }, s.stats);
    s.xds->start();
  }
  if (s.options.handle_signals) {
    s.signals.add(SIGTERM);
    s.signals.add(SIGINT);
    s.signals.add(SIGHUP);
    s.wait_signal();
  }
  s.started = true;
  if (inherit) {
    std::size_t sockets = 0, listeners = 0;
    for (const auto& l : s.passable)
      if (!l.admin) {
        sockets += l.fds.size();
        ++listeners;
      }
    try {
      inherit->confirm_accepting();
      spdlog::info("upgrade: took over from pid {} through {}; accepting on {} listening sockets of {} listeners",
                   inherit->old_pid(), s.upgrade_options.from, sockets, listeners);
    } catch (const std::exception& e) {
      // This process accepts already; the old one stops when it hears so.
      spdlog::warn("{} (this process serves on)", e.what());
    }
    inherit.reset();  // closes what no listener of this config took
    try {
      s.listen_for_upgrades(upgrade_path, upgrade_path == s.upgrade_options.from);
    } catch (const std::exception& e) {
      spdlog::error("{}: the next upgrade cannot come this way", e.what());
    }
  }
}

// The first worker's bind picks the port when the config asks for port 0;
// the others share it through SO_REUSEPORT. With `inherit`, a listener the
// old process had (same name and address) takes its sockets, spread over the
// workers (a worker may accept on several); workers beyond them bind more.
void Server::Impl::bind_listeners(UpgradeClient* inherit) {
  auto passed = [&](std::string_view name, bool admin_socket, const std::string& address) -> PassedListener* {
    if (!inherit) return nullptr;
    for (auto& l : inherit->listeners())
      if (l.admin == admin_socket && l.name == name && (l.address == address || l.bound == address) && !l.fds.empty())
        return &l;
    return nullptr;
  };
  for (const auto& l : current->config.listeners) {
    auto ep = endpoint_of(l.address);
    std::size_t first_bound = 0;
    if (auto* from = passed(l.name, false, l.address.to_string())) {
      const auto fds = inherit->take(*from);
      for (std::size_t i = 0; i < fds.size(); ++i) ep.port(workers[i % workers.size()]->adopt(l.name, fds[i]));
      first_bound = fds.size();
    }
    for (std::size_t i = first_bound; i < workers.size(); ++i) {
      try {
        ep.port(workers[i]->bind(l.name, ep));
      } catch (const boost::system::system_error& e) {
        throw std::runtime_error("listener " + l.name + ": cannot listen on " + l.address.to_string() + ": " +
                                 e.code().message());
      }
    }
    ports[l.name] = ep.port();
    const auto bound = core::Address{ep.address().to_string(), ep.port()}.to_string();
    spdlog::info("listener {} ({}) on {}{}", l.name, l.direction == config::Direction::inbound ? "inbound" : "outbound",
                 bound, first_bound ? " (passed on by the old process)" : "");
    PassedListener mine{l.name, l.address.to_string(), bound, false, {}};
    for (auto& w : workers)
      for (int fd : w->listening_fds(l.name)) mine.fds.push_back(fd);
    passable.push_back(std::move(mine));
  }
  if (current->config.admin.enabled) {
    const auto& a = current->config.admin.address;
    try {
      if (auto* from = passed("admin", true, a.to_string())) {
        auto fds = inherit->take(*from);
        for (std::size_t i = 1; i < fds.size(); ++i) ::close(fds[i]);
        admin = std::make_unique<AdminServer>(io, fds[0], stats, admin_hooks());
      } else {
        admin = std::make_unique<AdminServer>(io, endpoint_of(a), stats, admin_hooks());
      }
    } catch (const boost::system::system_error& e) {
      throw std::runtime_error("admin: cannot listen on " + a.to_string() + ": " + e.code().message());
    }
    admin->start();
    spdlog::info("admin on {}:{}", a.host, admin->port());
    passable.push_back(
        {"admin", a.to_string(), core::Address{a.host, admin->port()}.to_string(), true, {admin->native_handle()}});
  }
}

AdminServer::Hooks Server::Impl::admin_hooks() {
  return {[this] { return started && !draining && dns->initialized() && xds_ready(); }, [this] { return current; },
          [this] {
            spdlog::info("admin: /quitquitquit: draining");
            do_drain(true);
          },
          [this] { return memory.scrape(); }};
}

void Server::Impl::listen_for_upgrades(const std::string& path, bool replace) {
  upgrade =
      std::make_unique<UpgradeListener>(io, path, replace,
                                        UpgradeListener::Hooks{[this] { return draining; }, [this] { return passable; },
                                                               [this](int pid) { hand_off(pid); }},
                                        upgrade_options.timeout);
  upgrade->start();
  spdlog::info("upgrade socket on {}", path);
}

// The new process accepts on the very sockets this one has (the same
// queues): stop accepting, which closes only this process's copies, and
// drain, both sides at once (the new process serves both).
void Server::Impl::hand_off(int pid) {
  spdlog::info("upgrade: pid {} accepts on our listening sockets: draining", pid);
  if (admin) admin->stop();
  do_drain(true);
}

// Files a config names but does not hold (key sets, certificates) are
// checked for changes about once a second, on this thread; what changed is
// reloaded there and handed to the workers without a lock on their path.
void Server::Impl::watch_files() {
  watch_timer.expires_after(std::max(current->config.file_watch_interval, config::Duration(10)));
  watch_timer.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped) return;
    for (const auto& l : current->listeners) {
      if (l->tls_context) l->tls_context->refresh();
      for (const auto& f : l->filters) f->refresh();
    }
    for (const auto& c : current->clusters)
      if (c->tls()) c->tls()->refresh();
    watch_files();
  });
}

void Server::Impl::wait_signal() {
  signals.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP: reloading {}", initial.file);
      auto loaded = config::load_file(initial.file);
      if (!loaded.ok()) {
        stats.count_reload(false);
        for (const auto& e : loaded.errors) spdlog::error("reload rejected: {}", e.to_string());
      } else {
        reload_file(std::move(*loaded.config));
      }
      wait_signal();
      return;
    }
    spdlog::info("signal {}: draining", sig);
    do_drain(false);
  });
}

std::vector<std::string> Server::Impl::reload_file(config::Config next) {
  auto file_config = next;
  auto errors = merge_xds(next, xds ? xds->current() : xds::Dynamic{});
  if (!errors.empty()) {
    stats.count_reload(false);
    for (const auto& e : errors) spdlog::error("reload rejected: {}", e);
    return errors;
  }
  errors = do_reload(std::move(next));
  if (errors.empty()) file = std::move(file_config);
  return errors;
}

std::vector<std::string> Server::Impl::apply_xds(const xds::Dynamic& dynamic) {
  if (stopped) return {"the proxy is stopping"};
  auto next = file;
  auto errors = merge_xds(next, dynamic);
  if (!errors.empty()) return errors;
  return do_reload(std::move(next), true);
}

// Until the control plane's first clusters and their endpoints are in force,
// or initial_fetch_timeout has passed since the start.
bool Server::Impl::xds_ready() const {
  if (!xds || xds->initialized()) return true;
  return std::chrono::steady_clock::now() - started_at >= initial.xds->initial_fetch_timeout;
}

std::vector<std::string> Server::Impl::do_reload(config::Config next, bool from_xds) {
  if (next.workers == 0) next.workers = current->config.workers;
  auto errors = restart_only_changes(current->config, next);
  if (errors.empty()) {
    auto built = build_snapshot(std::move(next), stats, static_cast<unsigned>(workers.size()), upstreams);
    errors = std::move(built.errors);
    if (built.snapshot) {
      current = built.snapshot;
      show_limits(stats, current->config);
      net::set_upstream_mark(current->config.socket_mark);
      for (auto& w : workers) w->publish(current);
      dns->sync(current->config);
      if (!from_xds) {
        stats.count_reload(true);
        spdlog::info("config reloaded");
      }
      return {};
    }
  }
  if (from_xds) return errors;  // the client logs them with the NACK
  stats.count_reload(false);
  for (const auto& e : errors) spdlog::error("reload rejected: {}", e);
  return errors;
}

// A DNS cluster's names resolved to other addresses: the same config again,
// with them, for the workers (not counted as a reload).
void Server::Impl::dns_changed() {
  if (stopped) return;
  auto built = build_snapshot(current->config, stats, static_cast<unsigned>(workers.size()), upstreams);
  if (!built.snapshot) {
    for (const auto& e : built.errors) spdlog::error("dns: the new endpoints were not taken: {}", e);
    return;
  }
  current = built.snapshot;
  for (auto& w : workers) w->publish(current);
}

// Inbound and outbound listeners both: the proxy beside an application.
bool Server::Impl::sidecar() const {
  const auto& ls = current->config.listeners;
  auto any = [&](config::Direction d) {
    return std::any_of(ls.begin(), ls.end(), [d](const auto& l) { return l.direction == d; });
  };
  return current->config.outbound_drain_idle.count() > 0 && any(config::Direction::inbound) &&
         any(config::Direction::outbound);
}

// A sidecar's shutdown goes in two steps, so that the application's own
// shutdown can still call out (where Istio's and Linkerd's sidecars have
// broken it): first the inbound listeners stop accepting and drain, while
// the outbound ones serve as before; once the inbound side is drained and
// no outbound connection has been open for outbound_drain_idle (the
// application is done, or gone), the outbound side drains too. drain_timeout
// bounds the whole. Anything else drains at once, as does a sidecar told by
// its application that it is done (/quitquitquit).
void Server::Impl::do_drain(bool everything) {
  if (draining && !(everything && inbound_first)) return;
  const bool first = !draining;
  draining = true;
  signals.cancel();
  if (first && !everything && sidecar()) {
    inbound_first = true;
    spdlog::info("draining the inbound listeners; the outbound ones serve until the application is done");
    for (auto& w : workers) w->drain(true);
  } else {
    inbound_first = false;
    for (auto& w : workers) w->drain(false);
  }
  if (first) finish_drain(std::chrono::steady_clock::now() + current->config.drain_timeout);
}

void Server::Impl::finish_drain(std::chrono::steady_clock::time_point deadline) {
  const auto now = std::chrono::steady_clock::now();
  if (inbound_first && now < deadline) {
    std::size_t inbound = 0, outbound = 0;
    for (auto& w : workers) {
      inbound += w->open_connections(true);
      outbound += w->open_connections(false);
    }
    if (outbound > 0) {
      outbound_quiet_since.reset();
    } else if (!outbound_quiet_since) {
      outbound_quiet_since = now;
    }
    if (inbound == 0 && outbound_quiet_since && now - *outbound_quiet_since >= current->config.outbound_drain_idle) {
      spdlog::info("inbound drained, no outbound connection for {} ms: draining the outbound listeners",
                   current->config.outbound_drain_idle.count());
      inbound_first = false;
      for (auto& w : workers) w->drain(false);
    }
  }
  std::size_t open = 0;
  for (auto& w : workers) open += w->open_connections();
  if ((open == 0 && !inbound_first) || now >= deadline) {
    if (open) spdlog::warn("drain timeout: closing {} connections", open);
    for (auto& w : workers) w->stop();
    if (admin) admin->stop();
    if (upgrade) upgrade->stop();
    if (dns) dns->stop();
    if (xds) xds->stop();
    watch_timer.cancel();
    memory_sweep.stop();
    stopped = true;
    // The spans of the last moments go out before the process ends.
    if (reporter) {
      reporter->stop([this] { io.stop(); });
    } else {
      io.stop();
    }
    return;
  }
  auto timer = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(20));
  timer->async_wait([this, timer, deadline](const boost::system::error_code&) { finish_drain(deadline); });
}

int Server::run() {
  auto guard = asio::make_work_guard(impl_->io);
  impl_->io.run();
  return 0;
}

namespace {
// Runs f on the main thread and waits for its result.
template <class F>
auto on_main(asio::io_context& io, F&& f) -> decltype(f()) {
  if (io.get_executor().running_in_this_thread()) return f();
  std::packaged_task<decltype(f())()> task(std::forward<F>(f));
  auto result = task.get_future();
  asio::post(io, [&task] { task(); });
  return result.get();
}
}  // namespace

std::vector<std::string> Server::reload(config::Config next) {
  return on_main(impl_->io, [&] { return impl_->reload_file(std::move(next)); });
}

std::vector<std::string> Server::reload_from_file() {
  auto loaded = config::load_file(impl_->initial.file);
  if (!loaded.ok()) {
    impl_->stats.count_reload(false);
    std::vector<std::string> out;
    for (const auto& e : loaded.errors) out.push_back(e.to_string());
    return out;
  }
  return reload(std::move(*loaded.config));
}

void Server::drain() {
  asio::post(impl_->io, [this] { impl_->do_drain(false); });
}

std::uint16_t Server::listener_port(std::string_view name) const {
  auto it = impl_->ports.find(name);
  return it == impl_->ports.end() ? 0 : it->second;
}

std::uint16_t Server::admin_port() const { return impl_->admin ? impl_->admin->port() : 0; }

}  // namespace outrigger::server
