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
#include "outrigger/server/worker.hpp"

namespace outrigger::server {

namespace asio = boost::asio;
using asio::ip::tcp;

struct Server::Impl {
  Impl(config::Config c, ServerOptions o)
      : initial(std::move(c)), options(o), stats(std::max(1u, initial.workers)), signals(io) {}

  config::Config initial;
  ServerOptions options;
  observability::Stats stats;  // before the workers: they point into it
  asio::io_context io{1};
  asio::signal_set signals;
  asio::steady_timer watch_timer{io};
  observability::MemoryStats memory{std::max(1u, initial.workers)};
  MemorySweep memory_sweep{io, memory};
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<AdminServer> admin;
  KeptUpstreams upstreams;
  std::unique_ptr<SpanReporter> reporter;
  std::unique_ptr<upstream::DnsRefresher> dns;  // DNS clusters' lookups, on this thread
  std::shared_ptr<const Snapshot> current;
  std::map<std::string, std::uint16_t, std::less<>> ports;
  bool started = false;
  bool draining = false;
  bool inbound_first = false;  // draining the inbound side only, so far
  std::optional<std::chrono::steady_clock::time_point> outbound_quiet_since;
  bool stopped = false;

  void wait_signal();
  void watch_files();
  std::vector<std::string> do_reload(config::Config next);
  void dns_changed();
  // `everything`: both sides at once (the application said it is done).
  void do_drain(bool everything);
  void finish_drain(std::chrono::steady_clock::time_point deadline);
  bool sidecar() const;
};

namespace {

tcp::endpoint endpoint_of(const core::Address& a) {
  return tcp::endpoint(asio::ip::make_address(a.host), a.port);
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

void Server::start() {
  auto& s = *impl_;
  const unsigned n = std::max(1u, s.initial.workers);
  for (unsigned i = 0; i < n; ++i) s.workers.push_back(std::make_unique<Worker>(i, n, s.memory.workers[i]));

  s.upstreams.checks_on = s.io.get_executor();
  s.dns = std::make_unique<upstream::DnsRefresher>(s.io, s.stats, [&s] { s.dns_changed(); });
  s.upstreams.dns = &s.dns->table();
  auto built = build_snapshot(s.initial, s.stats, n, s.upstreams);
  if (!built.snapshot) {
    std::string all;
    for (const auto& e : built.errors) all += e + "\n";
    throw std::runtime_error(all);
  }
  s.current = built.snapshot;
  net::set_upstream_mark(s.current->config.socket_mark);
  s.dns->sync(s.current->config);

  // The first worker's bind picks the port when the config asks for port 0;
  // the others share it through SO_REUSEPORT.
  for (const auto& l : s.current->config.listeners) {
    auto ep = endpoint_of(l.address);
    for (auto& w : s.workers) {
      try {
        ep.port(w->bind(l.name, ep));
      } catch (const boost::system::system_error& e) {
        throw std::runtime_error("listener " + l.name + ": cannot listen on " + l.address.to_string() + ": " +
                                 e.code().message());
      }
    }
    s.ports[l.name] = ep.port();
    spdlog::info("listener {} ({}) on {}", l.name, l.direction == config::Direction::inbound ? "inbound" : "outbound",
                 tcp::endpoint(ep.address(), ep.port()).address().to_string() + ":" + std::to_string(ep.port()));
  }
  if (s.current->config.admin.enabled) {
    const auto& a = s.current->config.admin.address;
    try {
      s.admin = std::make_unique<AdminServer>(
          s.io, endpoint_of(a), s.stats,
          AdminServer::Hooks{[&s] { return s.started && !s.draining && s.dns->initialized(); }, [&s] { return s.current; },
                             [&s] {
                               spdlog::info("admin: /quitquitquit: draining");
                               s.do_drain(true);
                             },
                             [&s] { return s.memory.scrape(); }});
    } catch (const boost::system::system_error& e) {
      throw std::runtime_error("admin: cannot listen on " + a.to_string() + ": " + e.code().message());
    }
    s.admin->start();
    spdlog::info("admin on {}:{}", a.host, s.admin->port());
  }
  for (auto& w : s.workers) w->start(s.current);
  s.reporter = std::make_unique<SpanReporter>(s.io, [&s] { return s.current; });
  s.reporter->start();
  s.watch_files();
  s.memory_sweep.start();
  if (s.options.handle_signals) {
    s.signals.add(SIGTERM);
    s.signals.add(SIGINT);
    s.signals.add(SIGHUP);
    s.wait_signal();
  }
  s.started = true;
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
        do_reload(std::move(*loaded.config));
      }
      wait_signal();
      return;
    }
    spdlog::info("signal {}: draining", sig);
    do_drain(false);
  });
}

std::vector<std::string> Server::Impl::do_reload(config::Config next) {
  if (next.workers == 0) next.workers = current->config.workers;
  auto errors = restart_only_changes(current->config, next);
  if (errors.empty()) {
    auto built = build_snapshot(std::move(next), stats, static_cast<unsigned>(workers.size()), upstreams);
    errors = std::move(built.errors);
    if (built.snapshot) {
      current = built.snapshot;
      net::set_upstream_mark(current->config.socket_mark);
      for (auto& w : workers) w->publish(current);
      dns->sync(current->config);
      stats.count_reload(true);
      spdlog::info("config reloaded");
      return {};
    }
  }
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
    if (dns) dns->stop();
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
  return on_main(impl_->io, [&] { return impl_->do_reload(std::move(next)); });
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
