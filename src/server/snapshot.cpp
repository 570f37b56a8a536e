#include "outrigger/server/snapshot.hpp"

#include <algorithm>

#include "outrigger/net/detect.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <fmt/format.h>

#include <random>

#include "outrigger/config/loader.hpp"
#include "outrigger/config/yaml_reader.hpp"

namespace outrigger::server {

namespace asio = boost::asio;
using asio::ip::tcp;

const ListenerRuntime* Snapshot::listener(std::string_view name) const {
  for (const auto& l : listeners)
    if (l->config->name == name) return l.get();
  return nullptr;
}

const upstream::Cluster* Snapshot::cluster_at(const boost::asio::ip::tcp::endpoint& address) const {
  auto it = std::lower_bound(endpoint_owners.begin(), endpoint_owners.end(), address,
                             [](const auto& e, const auto& a) { return e.first < a; });
  if (it == endpoint_owners.end() || it->first != address) return nullptr;
  return clusters[it->second].get();
}

const upstream::Cluster* ListenerRuntime::cluster_for_sni(std::string_view server_name) const {
  for (const auto& [route, cluster] : sni_clusters) {
    for (const auto& name : route->names)
      if (net::server_name_matches(name, server_name)) return cluster.get();
  }
  return nullptr;
}

namespace {

struct Errors {
  const std::string& file;
  std::vector<std::string>& out;
  void add(const config::Mark& m, std::string message) {
    out.push_back(config::Diagnostic{file, m, std::move(message)}.to_string());
  }
};

// Host names are resolved once, when the config loads.
std::optional<tcp::endpoint> resolve(const core::Address& a, std::string& why) {
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(a.host, ec);
  if (!ec) return tcp::endpoint(ip, a.port);
  asio::io_context io;
  tcp::resolver resolver(io);
  const auto results = resolver.resolve(a.host, std::to_string(a.port), ec);
  if (ec || results.empty()) {
    why = ec ? ec.message() : "no addresses";
    return std::nullopt;
  }
  return results.begin()->endpoint();
}

// A DNS cluster's endpoints as its names last resolved: strict_dns, one per
// address (named by it); logical_dns, its one name at one address. IP
// addresses among the names stand for themselves. A name not yet resolved
// adds nothing.
std::vector<upstream::Endpoint> dns_endpoints(const config::Cluster& c, const upstream::DnsTable* table) {
  std::vector<upstream::Endpoint> out;
  const std::map<std::string, std::vector<asio::ip::address>>* names = nullptr;
  if (table)
    if (auto it = table->find(c.name); it != table->end()) names = &it->second;
  for (const auto& e : c.endpoints) {
    std::vector<asio::ip::address> addresses;
    boost::system::error_code ec;
    if (auto ip = asio::ip::make_address(e.address.host, ec); !ec) {
      addresses.push_back(ip);
    } else if (names) {
      if (auto it = names->find(e.address.host); it != names->end()) addresses = it->second;
    }
    for (const auto& a : addresses) {
      tcp::endpoint ep(a, e.address.port);
      if (std::any_of(out.begin(), out.end(), [&](const auto& x) { return x.address == ep; })) continue;
      std::string name = c.type == config::ClusterType::logical_dns
                             ? e.address.to_string()
                             : core::Address{a.to_string(), e.address.port}.to_string();
      out.push_back({std::move(name), ep, e.weight});
    }
  }
  return out;
}

}  // namespace

BuildResult build_snapshot(config::Config cfg, observability::Stats& stats, unsigned workers, KeptUpstreams& kept) {
  BuildResult result;
  stats.begin_build();
  auto snap = std::make_shared<Snapshot>();
  snap->config = std::move(cfg);
  const auto& config = snap->config;
  Errors errors{config.file, result.errors};

  std::vector<std::pair<observability::ClusterStats*, std::shared_ptr<observability::EndpointSet>>> endpoint_sets;
  std::map<std::string, std::shared_ptr<const upstream::Cluster>, std::less<>> clusters;
  for (const auto& c : config.clusters) {
    std::vector<upstream::Endpoint> endpoints;
    if (c.type != config::ClusterType::static_) {
      endpoints = dns_endpoints(c, kept.dns);
    } else {
      for (const auto& e : c.endpoints) {
        std::string why;
        if (auto ep = resolve(e.address, why)) {
          endpoints.push_back({e.address.to_string(), *ep, e.weight});
        } else {
          errors.add(c.mark,
                     fmt::format("clusters.{}: cannot resolve endpoint '{}': {}", c.name, e.address.to_string(), why));
        }
      }
      if (endpoints.size() != c.endpoints.size()) continue;
    }
    auto* cstats = stats.cluster(c.name);
    // Health and ejections stay with the cluster while its endpoints do.
    std::vector<std::string> names;
    for (const auto& e : endpoints) names.push_back(e.name);
    auto endpoint_set = cstats->endpoints && cstats->endpoints->names == names
                            ? cstats->endpoints
                            : std::make_shared<observability::EndpointSet>(std::move(names));
    endpoint_sets.emplace_back(cstats, endpoint_set);
    auto cluster = std::make_shared<upstream::Cluster>(snap->clusters.size(), c, std::move(endpoints), cstats,
                                                       std::move(endpoint_set));
    if (c.tls) {
      try {
        cluster->set_tls(std::make_shared<tls::Context>(*c.tls, tls::Side::client, stats.tls_material("", c.name),
                                                       tls::alpn_for(c.protocol)));
      } catch (const std::exception& e) {
        errors.add(c.tls->mark, fmt::format("clusters.{}.{}", c.name, e.what()));
      }
    }
    for (const auto& e : cluster->endpoints()) snap->endpoint_owners.emplace_back(e.address, snap->clusters.size());
    snap->clusters.push_back(cluster);
    clusters[c.name] = cluster;
  }

  // First cluster wins for an endpoint in several (a stable sort keeps config order).
  std::stable_sort(snap->endpoint_owners.begin(), snap->endpoint_owners.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& l : config.listeners) {
    auto rt = std::make_unique<ListenerRuntime>();
    rt->config = &l;
    rt->direction = l.direction == config::Direction::inbound ? "inbound" : "outbound";
    rt->stats = stats.listener(l.name, rt->direction);
    rt->no_route_stats = stats.route(rt->direction, l.name, "", "");
    rt->settings = {l.max_request_line_bytes, l.max_request_headers_bytes, l.request_headers_timeout, l.idle_timeout,
                    l.protocol != config::Protocol::http2, l.protocol != config::Protocol::http1,
                    {l.http2.max_concurrent_streams, l.http2.initial_stream_window_size,
                     l.http2.initial_connection_window_size,
                     l.http2.max_header_list_size ? l.http2.max_header_list_size
                                                  : static_cast<std::uint32_t>(l.max_request_headers_bytes)}};
    if (l.tls) {
      try {
        // A listener that tunnels TCP also takes it in mTLS from another Outrigger.
        auto alpn = tls::alpn_for(l.protocol);
        if (l.protocol == config::Protocol::tcp || l.original_destination || !l.cluster.empty())
          alpn.insert(0, tls::kTcpAlpnWire);
        rt->tls_context = std::make_unique<tls::Context>(*l.tls, tls::Side::server, stats.tls_material(l.name, ""),
                                                         std::move(alpn));
        using FCC = config::ForwardClientCert;
        rt->tls = http::DownstreamTls{rt->tls_context.get(), l.tls->mode == config::Tls::Mode::permissive,
                                      l.forward_client_cert == FCC::sanitize_set ||
                                          l.forward_client_cert == FCC::append_forward};
      } catch (const std::exception& e) {
        errors.add(l.tls->mark, fmt::format("listeners.{}.{}", l.name, e.what()));
      }
    }
    std::vector<config::Diagnostic> filter_errors;
    config::YamlReader yaml(config.file, filter_errors);
    for (std::size_t i = 0; i < l.filters.size(); ++i) {
      const http::FilterContext context{fmt::format("listeners.{}.filters[{}]", l.name, i), l.name, rt->direction,
                                        &stats, std::max(1u, workers), &l};
      if (auto f = http::make_filter_factory(l.filters[i], context, yaml)) rt->filters.push_back(std::move(f));
    }
    for (const auto& e : filter_errors) result.errors.push_back(e.to_string());
    std::vector<router::CompiledRoute> routes;
    for (const auto& r : l.routes) {
      router::CompiledRoute cr;
      cr.config = &r;
      auto weighted = r.weighted_clusters;
      if (!r.cluster.empty()) weighted.push_back({r.cluster, 1});
      std::uint64_t cumulative = 0;
      for (const auto& w : weighted) {
        auto it = clusters.find(w.cluster);
        if (it == clusters.end()) continue;  // the loader reported it, or resolution failed above
        cumulative += w.weight;
        cr.targets.push_back({it->second, stats.route(rt->direction, l.name, r.name, w.cluster), cumulative});
      }
      if (cr.targets.size() != weighted.size()) continue;
      if (r.fallback && !r.fallback->cluster.empty()) {
        auto it = clusters.find(r.fallback->cluster);
        if (it == clusters.end()) continue;
        cr.fallback = router::RouteTarget{it->second, stats.route(rt->direction, l.name, r.name, r.fallback->cluster), 1};
      }
      cr.stats = stats.route(rt->direction, l.name, r.name, "");
      try {
        if (r.match.regex) cr.path_regex.emplace(*r.match.regex, std::regex::ECMAScript | std::regex::optimize);
        for (const auto& h : r.match.headers) cr.headers.emplace_back(h);
      } catch (const std::regex_error& e) {
        errors.add(r.mark, fmt::format("route {}: invalid regex: {}", r.name, e.what()));
        continue;
      }
      routes.push_back(std::move(cr));
    }
    rt->routes = router::RouteTable(std::move(routes));
    if (!l.cluster.empty()) {
      if (auto it = clusters.find(l.cluster); it != clusters.end()) rt->tcp_cluster = it->second;
    }
    if (l.original_destination) {
      boost::system::error_code ec;
      rt->application_ip = boost::asio::ip::make_address(l.application_address.host, ec);
      if (ec)
        errors.add(l.mark, fmt::format("listeners.{}.application_address: '{}' is not an IP address", l.name,
                                       l.application_address.host));
    }
    for (const auto& sni : l.sni) {
      if (auto it = clusters.find(sni.cluster); it != clusters.end()) rt->sni_clusters.emplace_back(&sni, it->second);
    }
    if (l.original_destination) {
      rt->destination_configs.reserve(snap->clusters.size());  // routes point at these
      for (const auto& c : snap->clusters) {
        auto& r = rt->destination_configs.emplace_back();
        r.name = l.name + "/destination";
        r.cluster = c->name();
        r.mark = l.mark;
        router::CompiledRoute cr;
        cr.config = &r;
        cr.targets.push_back({c, stats.route(rt->direction, l.name, r.name, c->name()), 1});
        cr.stats = cr.targets.front().stats;
        rt->destination_routes.push_back(std::move(cr));
      }
    }
    snap->listeners.push_back(std::move(rt));
  }

  if (config.access_log.enabled) {
    try {
      if (workers > 0) {
        snap->access_log = observability::AccessLog::create(config.access_log);
      } else if (auto why = observability::AccessLog::validate_format(config.access_log.text_format);
                 config.access_log.format == config::AccessLogFormat::text && !why.empty()) {
        errors.add({}, "access_log.text_format: " + why);
      }
    } catch (const std::exception& e) {
      errors.add({}, std::string("access_log: ") + e.what());
    }
  }

  if (!result.errors.empty()) {
    snap.reset();  // what points at the new series goes first
    stats.abort_build();
    return result;
  }
  stats.commit_build();
  if (workers > 0) {
    for (auto& [cstats, set] : endpoint_sets) cstats->endpoints = set;
    // A cluster that no longer has outlier detection puts ejected endpoints back.
    for (const auto& c : snap->clusters) {
      if (c->config().outlier_detection) continue;
      for (auto& d : c->endpoint_state_ptr()->data) {
        d.ejected_until_ms.store(0);
        d.ejections.store(0);
      }
    }
  }
  if (kept.checks_on) {
    // Keep the checkers whose checks and endpoints did not change; stop the
    // others (which marks their endpoints healthy), then start the new ones.
    auto old = std::move(kept.checkers);
    kept.checkers.clear();
    std::vector<upstream::HealthChecker*> fresh;
    for (const auto& c : snap->clusters) {
      const auto& hc = c->config().health_check;
      if (!hc) continue;
      auto it = old.find(c->name());
      if (it != old.end() && it->second->serves(*hc, &c->endpoint_state(), c->config().tls)) {
        it->second->use_tls(c->tls_ptr());
        kept.checkers[c->name()] = std::move(it->second);
        continue;
      }
      auto checker =
          std::make_unique<upstream::HealthChecker>(*kept.checks_on, c->config(), c->endpoints(), c->endpoint_state_ptr(),
                                                    c->tls_ptr());
      fresh.push_back(checker.get());
      kept.checkers[c->name()] = std::move(checker);
    }
    old.clear();
    for (auto* checker : fresh) checker->start();
  }
  if (snap->config.tracing && workers > 0) {
    const auto per_worker = std::max<std::size_t>(1, snap->config.tracing->max_queue_spans / workers);
    if (!kept.spans || kept.spans->capacity_per_worker != per_worker || kept.spans->queues.size() != workers)
      kept.spans = std::make_shared<observability::SpanQueues>(workers, per_worker, stats.tracing());
    snap->spans = kept.spans;
  }
  result.snapshot = std::move(snap);
  return result;
}

}  // namespace outrigger::server
