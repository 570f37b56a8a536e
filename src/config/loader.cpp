#include "outrigger/config/loader.hpp"

#include <arpa/inet.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "outrigger/config/yaml_reader.hpp"

namespace outrigger::config {

namespace {

bool is_token(std::string_view s) {
  static constexpr std::string_view specials = "!#$%&'*+-.^_`|~";
  if (s.empty()) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    specials.find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

void check_regex(YamlReader& r, const YAML::Node& at, const std::string& path, const std::string& re) {
  try {
    std::regex compiled(re, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    r.error(at, path, "invalid regex '" + re + "': " + e.what());
  }
}

}  // namespace

std::vector<HeaderMatch> read_header_matches(YamlReader& r, const YAML::Node& list, const std::string& path) {
  std::vector<HeaderMatch> out;
  if (!r.sequence(list, path)) return out;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto h = list[i];
    const auto hp = YamlReader::index(path, i);
    if (!r.mapping(h, hp, {"name", "exact", "prefix", "regex", "present", "absent", "invert"})) continue;
    HeaderMatch hm;
    if (auto name = r.string(h, "name", hp, true)) {
      if (!is_token(*name)) r.error(h["name"], hp + ".name", "invalid header name '" + *name + "'");
      hm.name = lower(*name);
    }
    hm.exact = r.string(h, "exact", hp);
    hm.prefix = r.string(h, "prefix", hp);
    hm.regex = r.string(h, "regex", hp);
    if (hm.exact.has_value() + hm.prefix.has_value() + hm.regex.has_value() > 1)
      r.error(h, hp, "use only one of 'exact', 'prefix' or 'regex'");
    if (hm.regex) check_regex(r, h["regex"], hp + ".regex", *hm.regex);
    if (auto present = r.boolean(h, "present", hp); present && !*present) hm.invert = true;
    if (auto absent = r.boolean(h, "absent", hp); absent && *absent) hm.invert = true;
    if (auto inv = r.boolean(h, "invert", hp); inv && *inv) hm.invert = true;
    out.push_back(std::move(hm));
  }
  return out;
}

namespace {

// Each section of the file has a reader function; they share the reader and
// fill the typed structs.
class Loader {
 public:
  Loader(const std::string& file, std::vector<Diagnostic>& errors) : r_(file, errors) {}

  void load(const YAML::Node& root, Config& c) {
    if (root.IsNull()) return;  // an empty file is a config with no listeners
    if (!r_.mapping(root, "", {"admin", "workers", "listeners", "clusters", "access_log", "log_level",
                               "drain_timeout", "outbound_drain_idle", "file_watch_interval", "tracing",
                               "socket_mark", "overload", "xds"}))
      return;
    if (auto m = r_.integer(root, "socket_mark", "", 0, UINT32_MAX)) c.socket_mark = static_cast<std::uint32_t>(*m);
    if (auto n = YamlReader::child(root, "tracing")) tracing(*n, c);
    if (auto n = YamlReader::child(root, "admin")) admin(*n, c.admin);
    if (auto n = YamlReader::child(root, "overload")) overload(*n, c.overload);
    if (auto n = YamlReader::child(root, "xds")) xds(*n, c);
    if (auto w = r_.integer(root, "workers", "", 1, 256)) c.workers = static_cast<unsigned>(*w);
    if (auto l = r_.choice(root, "log_level", "", {"trace", "debug", "info", "warn", "error", "critical", "off"}))
      c.log_level = *l;
    if (auto d = r_.duration(root, "drain_timeout", "")) c.drain_timeout = *d;
    if (auto d = r_.duration(root, "outbound_drain_idle", "")) c.outbound_drain_idle = *d;
    if (auto d = r_.duration(root, "file_watch_interval", "")) c.file_watch_interval = *d;
    if (auto n = YamlReader::child(root, "access_log")) access_log(*n, c.access_log);
    if (auto n = YamlReader::child(root, "clusters"); n && r_.sequence(*n, "clusters")) {
      for (std::size_t i = 0; i < n->size(); ++i) cluster((*n)[i], YamlReader::index("clusters", i), c);
    }
    if (auto n = YamlReader::child(root, "listeners"); n && r_.sequence(*n, "listeners")) {
      for (std::size_t i = 0; i < n->size(); ++i) listener((*n)[i], YamlReader::index("listeners", i), c);
    }
    cross_check(root, c);
  }

 private:
  void admin(const YAML::Node& n, Admin& a) {
    if (!r_.mapping(n, "admin", {"address", "enabled"})) return;
    if (auto e = r_.boolean(n, "enabled", "admin")) a.enabled = *e;
    if (auto addr = r_.address(n, "address", "admin", true, false)) a.address = *addr;
  }

  void xds(const YAML::Node& n, Config& c) {
    // The versions are what /config_dump writes; a dump loads back, and they are ignored.
    if (!r_.mapping(n, "xds", {"cluster", "node", "resources", "initial_fetch_timeout", "clusters_version",
                               "endpoints_version"}))
      return;
    (void)r_.string(n, "clusters_version", "xds");
    (void)r_.string(n, "endpoints_version", "xds");
    Xds x;
    x.mark = YamlReader::mark_of(n);
    if (auto v = r_.string(n, "cluster", "xds", true)) x.cluster = *v;
    if (auto node = YamlReader::child(n, "node")) {
      if (r_.mapping(*node, "xds.node", {"id", "cluster", "metadata"})) {
        if (auto v = r_.string(*node, "id", "xds.node", true)) x.node_id = *v;
        if (auto v = r_.string(*node, "cluster", "xds.node")) x.node_cluster = *v;
        if (auto md = YamlReader::child(*node, "metadata")) {
          if (!md->IsMap()) {
            r_.error(*md, "xds.node.metadata", "must be a mapping of strings");
          } else {
            for (const auto& kv : *md) {
              const auto key = kv.first.as<std::string>();
              if (auto v = r_.scalar(kv.second, "xds.node.metadata." + key)) x.node_metadata.emplace_back(key, *v);
            }
          }
        }
      }
    } else {
      r_.error(n, "xds", "missing required key 'node' (with its 'id')");
    }
    if (YamlReader::child(n, "resources")) {
      x.clusters = false;
      for (const auto& what : r_.strings(n, "resources", "xds")) {
        if (what == "clusters") {
          x.clusters = true;
        } else if (what == "listeners" || what == "routes" || what == "secrets" || what == "endpoints") {
          r_.error(n["resources"], "xds.resources",
                   "'" + what + "' is not supported yet: 'clusters' (CDS, with EDS for its EDS clusters) is");
        } else {
          r_.error(n["resources"], "xds.resources", "unknown resource type '" + what + "' (one of: clusters)");
        }
      }
    }
    if (auto d = r_.duration(n, "initial_fetch_timeout", "xds")) x.initial_fetch_timeout = *d;
    c.xds = std::move(x);
  }

  void overload(const YAML::Node& n, Overload& o) {
    if (!r_.mapping(n, "overload", {"max_downstream_connections", "max_requests_per_worker"})) return;
    if (auto v = r_.integer(n, "max_downstream_connections", "overload", 0, 10'000'000)) o.max_downstream_connections = *v;
    if (auto v = r_.integer(n, "max_requests_per_worker", "overload", 0, 10'000'000))
      o.max_requests_per_worker = static_cast<std::uint32_t>(*v);
  }

  void tracing(const YAML::Node& n, Config& c) {
    const std::string path = "tracing";
    if (!r_.mapping(n, path, {"service_name", "collector_cluster", "collector_path", "sample_rate", "propagation",
                              "max_queue_spans", "flush_interval", "max_batch_spans"}))
      return;
    Tracing t;
    t.mark = YamlReader::mark_of(n);
    if (auto v = r_.string(n, "service_name", path, true)) t.service_name = *v;
    if (auto v = r_.string(n, "collector_cluster", path, true)) t.collector_cluster = *v;
    if (auto v = r_.string(n, "collector_path", path)) {
      if (v->empty() || v->front() != '/') r_.error(n["collector_path"], path + ".collector_path", "must start with '/'");
      t.collector_path = *v;
    }
    if (auto v = r_.number(n, "sample_rate", path, 0, 1)) t.sample_rate = *v;
    if (YamlReader::child(n, "propagation")) {
      t.propagation.clear();
      for (const auto& f : r_.strings(n, "propagation", path)) {
        if (f == "b3") {
          t.propagation.push_back(Propagation::b3);
        } else if (f == "b3_single") {
          t.propagation.push_back(Propagation::b3_single);
        } else if (f == "w3c") {
          t.propagation.push_back(Propagation::w3c);
        } else {
          r_.error(n["propagation"], path + ".propagation", "invalid value '" + f + "' (one of: b3, b3_single, w3c)");
        }
      }
      if (t.propagation.empty()) r_.error(n["propagation"], path + ".propagation", "needs at least one format");
    }
    if (auto v = r_.integer(n, "max_queue_spans", path, 1, 10'000'000)) t.max_queue_spans = *v;
    if (auto d = r_.duration(n, "flush_interval", path)) {
      if (d->count() == 0) r_.error(n["flush_interval"], path + ".flush_interval", "must be greater than 0");
      t.flush_interval = *d;
    }
    if (auto v = r_.integer(n, "max_batch_spans", path, 1, 100'000)) t.max_batch_spans = *v;
    c.tracing = std::move(t);
  }

  void access_log(const YAML::Node& n, AccessLog& a) {
    if (!r_.mapping(n, "access_log", {"enabled", "path", "format", "text_format"})) return;
    a.enabled = true;
    if (auto e = r_.boolean(n, "enabled", "access_log")) a.enabled = *e;
    if (auto p = r_.string(n, "path", "access_log")) {
      if (p->empty()) r_.error(n["path"], "access_log.path", "must not be empty");
      a.path = *p;
    }
    if (auto f = r_.choice(n, "format", "access_log", {"json", "text"}))
      a.format = *f == "json" ? AccessLogFormat::json : AccessLogFormat::text;
    if (auto t = r_.string(n, "text_format", "access_log")) a.text_format = *t;
  }

  void cluster(const YAML::Node& n, const std::string& path, Config& c) {
    if (!r_.mapping(n, path,
                    {"name", "endpoints", "lb_policy", "connect_timeout", "connection_pool", "circuit_breakers",
                     "retry_budget", "breaker", "outlier_detection", "health_check", "tls", "protocol", "http2",
                     "type", "dns_refresh_rate", "respect_dns_ttl", "dns_lookup_family", "dns_resolvers",
                     "dns_timeout", "source"}))
      return;
    // `source` is what /config_dump writes (file or xds); a dump loads back as a file.
    (void)r_.choice(n, "source", path, {"file", "xds"});
    Cluster cl;
    cl.mark = YamlReader::mark_of(n);
    if (auto name = r_.string(n, "name", path, true)) cl.name = *name;
    if (auto t = r_.choice(n, "type", path, {"static", "strict_dns", "logical_dns"}))
      cl.type = *t == "static" ? ClusterType::static_ : *t == "strict_dns" ? ClusterType::strict_dns
                                                                            : ClusterType::logical_dns;
    dns(n, path, cl);
    if (auto eps = YamlReader::child(n, "endpoints"); !eps) {
      r_.error(n, path, "missing required key 'endpoints'");
    } else if (r_.sequence(*eps, path + ".endpoints")) {
      if (eps->size() == 0) r_.error(*eps, path + ".endpoints", "needs at least one endpoint");
      for (std::size_t i = 0; i < eps->size(); ++i) {
        const auto ep = (*eps)[i];
        const auto ep_path = YamlReader::index(path + ".endpoints", i);
        if (ep.IsMap()) {  // { address: host:port, weight: N }
          if (!r_.mapping(ep, ep_path, {"address", "weight"})) continue;
          auto a = r_.address(ep, "address", ep_path, false, true);
          auto w = r_.integer(ep, "weight", ep_path, 1, 10'000);
          if (a) cl.endpoints.push_back({*a, static_cast<std::uint32_t>(w.value_or(1))});
          continue;
        }
        if (!ep.IsScalar()) {
          r_.error(ep, ep_path, "expected host:port or {address, weight}");
          continue;
        }
        std::string why;
        if (auto a = core::parse_address(ep.Scalar(), false, &why)) {
          cl.endpoints.push_back({*a, 1});
        } else {
          r_.error(ep, ep_path, "invalid address '" + ep.Scalar() + "': " + why);
        }
      }
    }
    if (cl.type == ClusterType::logical_dns && cl.endpoints.size() > 1)
      r_.error(n["endpoints"], path + ".endpoints",
               "a logical_dns cluster has one endpoint (one host name); use strict_dns for several");
    if (auto p = r_.choice(n, "lb_policy", path, {"round_robin", "least_request", "random"}))
      cl.lb_policy = *p == "round_robin" ? LbPolicy::round_robin
                     : *p == "least_request" ? LbPolicy::least_request
                                             : LbPolicy::random;
    if (auto d = r_.duration(n, "connect_timeout", path)) {
      if (d->count() == 0) r_.error(n["connect_timeout"], path + ".connect_timeout", "must be greater than 0");
      cl.connect_timeout = *d;
    }
    if (auto t = YamlReader::child(n, "tls")) cl.tls = tls(*t, path + ".tls", false);
    if (auto p = protocol(n, path, false)) cl.protocol = *p;
    if (auto h = YamlReader::child(n, "http2")) cl.http2 = http2(*h, path + ".http2", true);
    if (auto p = YamlReader::child(n, "connection_pool")) {
      const auto pp = path + ".connection_pool";
      if (r_.mapping(*p, pp, {"max_idle_per_endpoint", "idle_timeout", "max_requests_per_connection"})) {
        if (auto v = r_.integer(*p, "max_idle_per_endpoint", pp, 0, 1'000'000))
          cl.connection_pool.max_idle_per_endpoint = *v;
        if (auto d = r_.duration(*p, "idle_timeout", pp)) cl.connection_pool.idle_timeout = *d;
        if (auto v = r_.integer(*p, "max_requests_per_connection", pp, 0, UINT32_MAX))
          cl.connection_pool.max_requests_per_connection = static_cast<std::uint32_t>(*v);
      }
    }
    if (auto b = YamlReader::child(n, "circuit_breakers")) {
      const auto bp = path + ".circuit_breakers";
      if (r_.mapping(*b, bp, {"max_connections", "max_pending_requests", "max_requests", "max_retries"})) {
        auto& cb = cl.circuit_breakers;
        if (auto v = r_.integer(*b, "max_connections", bp, 1, 1'000'000)) cb.max_connections = static_cast<std::uint32_t>(*v);
        if (auto v = r_.integer(*b, "max_pending_requests", bp, 0, 1'000'000))
          cb.max_pending_requests = static_cast<std::uint32_t>(*v);
        if (auto v = r_.integer(*b, "max_requests", bp, 1, 1'000'000)) cb.max_requests = static_cast<std::uint32_t>(*v);
        if (auto v = r_.integer(*b, "max_retries", bp, 0, 1'000'000)) cb.max_retries = static_cast<std::uint32_t>(*v);
      }
    }
    if (auto b = YamlReader::child(n, "breaker")) {
      const auto bp = path + ".breaker";
      if (r_.mapping(*b, bp, {"failure_rate", "slow_call_duration", "minimum_requests", "window", "open_duration",
                              "half_open_requests"})) {
        Breaker br;
        if (auto v = r_.number(*b, "failure_rate", bp, 0, 1)) {
          if (*v == 0) r_.error((*b)["failure_rate"], bp + ".failure_rate", "must be above 0");
          br.failure_rate = *v;
        }
        if (auto d = r_.duration(*b, "slow_call_duration", bp)) br.slow_call_duration = *d;
        if (auto v = r_.integer(*b, "minimum_requests", bp, 1, 1'000'000)) br.minimum_requests = static_cast<std::uint32_t>(*v);
        if (auto d = r_.duration(*b, "window", bp)) {
          if (d->count() < 1000 || d->count() > 60'000)
            r_.error((*b)["window"], bp + ".window", "must be from 1s to 60s");
          br.window = *d;
        }
        if (auto d = r_.duration(*b, "open_duration", bp)) br.open_duration = *d;
        if (auto v = r_.integer(*b, "half_open_requests", bp, 1, 1000)) br.half_open_requests = static_cast<std::uint32_t>(*v);
        cl.breaker = br;
      }
    }
    if (auto o = YamlReader::child(n, "outlier_detection")) {
      const auto op = path + ".outlier_detection";
      if (r_.mapping(*o, op, {"consecutive_5xx", "consecutive_gateway_failure", "interval", "base_ejection_time",
                              "max_ejection_time", "max_ejection_percent"})) {
        OutlierDetection od;
        if (auto v = r_.integer(*o, "consecutive_5xx", op, 0, 1'000'000)) od.consecutive_5xx = static_cast<std::uint32_t>(*v);
        if (auto v = r_.integer(*o, "consecutive_gateway_failure", op, 0, 1'000'000))
          od.consecutive_gateway_failure = static_cast<std::uint32_t>(*v);
        if (auto d = r_.duration(*o, "interval", op)) {
          if (d->count() == 0) r_.error((*o)["interval"], op + ".interval", "must be greater than 0");
          od.interval = *d;
        }
        if (auto d = r_.duration(*o, "base_ejection_time", op)) {
          if (d->count() == 0) r_.error((*o)["base_ejection_time"], op + ".base_ejection_time", "must be greater than 0");
          od.base_ejection_time = *d;
        }
        if (auto d = r_.duration(*o, "max_ejection_time", op)) od.max_ejection_time = *d;
        if (od.max_ejection_time < od.base_ejection_time)
          r_.error(*o, op, "max_ejection_time must not be below base_ejection_time");
        if (auto v = r_.integer(*o, "max_ejection_percent", op, 0, 100))
          od.max_ejection_percent = static_cast<std::uint32_t>(*v);
        cl.outlier_detection = od;
      }
    }
    if (auto h = YamlReader::child(n, "health_check")) {
      const auto hp = path + ".health_check";
      if (r_.mapping(*h, hp, {"path", "host", "interval", "timeout", "unhealthy_threshold", "healthy_threshold"})) {
        HealthCheck hc;
        if (auto v = r_.string(*h, "path", hp, true)) {
          if (v->empty() || v->front() != '/') r_.error((*h)["path"], hp + ".path", "must start with '/'");
          hc.path = *v;
        }
        if (auto v = r_.string(*h, "host", hp)) hc.host = *v;
        if (auto d = r_.duration(*h, "interval", hp)) {
          if (d->count() == 0) r_.error((*h)["interval"], hp + ".interval", "must be greater than 0");
          hc.interval = *d;
        }
        if (auto d = r_.duration(*h, "timeout", hp)) {
          if (d->count() == 0) r_.error((*h)["timeout"], hp + ".timeout", "must be greater than 0");
          hc.timeout = *d;
        }
        if (auto v = r_.integer(*h, "unhealthy_threshold", hp, 1, 1000)) hc.unhealthy_threshold = static_cast<std::uint32_t>(*v);
        if (auto v = r_.integer(*h, "healthy_threshold", hp, 1, 1000)) hc.healthy_threshold = static_cast<std::uint32_t>(*v);
        cl.health_check = hc;
      }
      // Checks speak HTTP/1.1: an HTTP/2-only endpoint (a gRPC server) would
      // fail every one and be taken out of the cluster.
      if (cl.protocol == Protocol::http2)
        r_.error(*h, hp, "health checks speak HTTP/1.1, which a 'protocol: http2' cluster's endpoints may not; "
                         "use outlier_detection to take failing endpoints out");
    }
    if (auto b = YamlReader::child(n, "retry_budget")) {
      const auto bp = path + ".retry_budget";
      if (r_.mapping(*b, bp, {"ratio", "min_retries_per_second"})) {
        if (auto v = r_.number(*b, "ratio", bp, 0, 10)) cl.retry_budget.ratio = *v;
        if (auto v = r_.number(*b, "min_retries_per_second", bp, 0, 1e6)) cl.retry_budget.min_retries_per_second = *v;
      }
    }
    if (!cl.name.empty()) {
      if (c.find_cluster(cl.name)) r_.error(n["name"], path + ".name", "duplicate cluster name '" + cl.name + "'");
      c.clusters.push_back(std::move(cl));
    }
  }

  // The DNS keys of a strict_dns or logical_dns cluster (Envoy's names).
  void dns(const YAML::Node& n, const std::string& path, Cluster& cl) {
    if (cl.type == ClusterType::static_) {
      for (const char* key : {"dns_refresh_rate", "respect_dns_ttl", "dns_lookup_family", "dns_resolvers", "dns_timeout"})
        if (YamlReader::child(n, key))
          r_.error(n[key], path + "." + key, "only for clusters of type strict_dns or logical_dns");
      return;
    }
    auto& d = cl.dns;
    if (auto v = r_.duration(n, "dns_refresh_rate", path)) {
      if (v->count() < 10) r_.error(n["dns_refresh_rate"], path + ".dns_refresh_rate", "must be at least 10ms");
      d.refresh_rate = *v;
    }
    if (auto v = r_.duration(n, "dns_timeout", path)) {
      if (v->count() < 10) r_.error(n["dns_timeout"], path + ".dns_timeout", "must be at least 10ms");
      d.timeout = *v;
    }
    if (auto v = r_.boolean(n, "respect_dns_ttl", path)) d.respect_ttl = *v;
    if (auto f = r_.choice(n, "dns_lookup_family", path, {"v4_only", "v6_only", "v4_preferred", "auto", "all"}))
      d.lookup_family = *f == "v4_only"        ? DnsLookupFamily::v4_only
                        : *f == "v6_only"      ? DnsLookupFamily::v6_only
                        : *f == "v4_preferred" ? DnsLookupFamily::v4_preferred
                        : *f == "auto"         ? DnsLookupFamily::auto_
                                               : DnsLookupFamily::all;
    const auto rp = path + ".dns_resolvers";
    for (const auto& text : r_.strings(n, "dns_resolvers", path)) {
      std::string why;
      auto a = core::parse_address(text, false, &why);
      if (!a && text.find(':') == std::string::npos) a = core::parse_address(text + ":53", false, &why);
      unsigned char ip[16];
      const bool literal = a && (inet_pton(AF_INET, a->host.c_str(), ip) == 1 || inet_pton(AF_INET6, a->host.c_str(), ip) == 1);
      if (!literal)
        r_.error(n["dns_resolvers"], rp, "invalid resolver '" + text + "': " + (a ? "not an IP address" : why));
      else
        d.resolvers.push_back(*a);
    }
  }

  // A listener's (server side) or a cluster's (client side) `tls:` block. The
  // files themselves are loaded when the snapshot is built.
  std::optional<Tls> tls(const YAML::Node& n, const std::string& path, bool server) {
    const bool ok = server ? r_.mapping(n, path, {"cert", "key", "ca", "mode", "min_version", "verify_identity"})
                           : r_.mapping(n, path, {"cert", "key", "ca", "min_version", "sni", "verify_identity"});
    if (!ok) return std::nullopt;
    Tls t;
    t.mark = YamlReader::mark_of(n);
    if (auto v = r_.string(n, "cert", path, server)) t.cert = *v;
    if (auto v = r_.string(n, "key", path, server)) t.key = *v;
    if (auto v = r_.string(n, "ca", path)) t.ca = *v;
    if (t.cert.empty() != t.key.empty()) r_.error(n, path, "'cert' and 'key' go together");
    if (auto m = r_.choice(n, "mode", path, {"strict", "permissive"}))
      t.mode = *m == "strict" ? Tls::Mode::strict : Tls::Mode::permissive;
    if (auto v = r_.choice(n, "min_version", path, {"1.2", "1.3"})) t.min_version = *v;
    if (auto v = r_.string(n, "sni", path)) t.sni = *v;
    t.verify_identity = r_.strings(n, "verify_identity", path);
    if (!t.verify_identity.empty() && t.ca.empty())
      r_.error(n, path, "'verify_identity' needs a 'ca' to verify the peer's certificate against");
    return t;
  }

  std::optional<Protocol> protocol(const YAML::Node& n, const std::string& path, bool listener) {
    const auto p = listener ? r_.choice(n, "protocol", path, {"auto", "http1", "http2", "tcp"})
                            : r_.choice(n, "protocol", path, {"auto", "http1", "http2"});
    if (!p) return std::nullopt;
    if (*p == "tcp") return Protocol::tcp;
    return *p == "auto" ? Protocol::auto_detect : *p == "http1" ? Protocol::http1 : Protocol::http2;
  }

  // What a listener does with connections that are not HTTP.
  void beyond_http(const YAML::Node& n, const std::string& path, Listener& l) {
    if (auto b = r_.boolean(n, "original_destination", path)) l.original_destination = *b;
    if (auto cl = r_.string(n, "cluster", path)) l.cluster = *cl;
    if (auto p = r_.choice(n, "passthrough", path, {"allow", "deny"}))
      l.passthrough = *p == "allow" ? Passthrough::allow : Passthrough::deny;
    if (auto a = r_.string(n, "application_address", path)) {
      std::string why;
      auto parsed = core::parse_address(*a, true, &why);
      if (!parsed) parsed = core::parse_address(a->find(':') != std::string::npos ? "[" + *a + "]:0" : *a + ":0", true);
      if (!parsed) {
        r_.error(n["application_address"], path + ".application_address",
                 "expected an address ('127.0.0.1', or '127.0.0.1:8080'): " + why);
      } else {
        l.application_address = *parsed;
      }
    }
    if (auto d = r_.duration(n, "detect_timeout", path)) {
      if (d->count() == 0 || d->count() > 60'000)
        r_.error(n["detect_timeout"], path + ".detect_timeout", "must be from 1ms to 60s");
      l.detect_timeout = *d;
    }
    if (auto d = r_.duration(n, "tunnel_idle_timeout", path)) {
      if (d->count() == 0) r_.error(n["tunnel_idle_timeout"], path + ".tunnel_idle_timeout", "must be greater than 0");
      l.tunnel_idle_timeout = *d;
    }
    if (auto ports = YamlReader::child(n, "opaque_ports"); ports && r_.sequence(*ports, path + ".opaque_ports")) {
      l.opaque_ports.clear();
      for (std::size_t i = 0; i < ports->size(); ++i) {
        const auto item = (*ports)[i];
        const auto ip = YamlReader::index(path + ".opaque_ports", i);
        auto text = r_.scalar(item, ip);
        if (!text) continue;
        // A port, or a range "5000-5010".
        unsigned lo = 0, hi = 0;
        const std::string_view t(*text);
        const auto dash = t.find('-');
        auto number = [](std::string_view v, unsigned& out) {
          const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
          return ec == std::errc() && end == v.data() + v.size() && !v.empty();
        };
        const bool parsed = dash == std::string_view::npos ? number(t, lo) && (hi = lo, true)
                                                           : number(t.substr(0, dash), lo) && number(t.substr(dash + 1), hi);
        if (!parsed || lo == 0 || hi > 65535 || lo > hi || hi - lo > 4096) {
          r_.error(item, ip, "expected a port (1-65535) or a range such as 5000-5010, got '" + *text + "'");
          continue;
        }
        for (unsigned p = lo; p <= hi; ++p) l.opaque_ports.push_back(static_cast<std::uint16_t>(p));
      }
    }
    if (auto sni = YamlReader::child(n, "sni"); sni && r_.sequence(*sni, path + ".sni")) {
      for (std::size_t i = 0; i < sni->size(); ++i) {
        const auto item = (*sni)[i];
        const auto sp = YamlReader::index(path + ".sni", i);
        if (!r_.mapping(item, sp, {"names", "cluster"})) continue;
        SniRoute route;
        route.mark = YamlReader::mark_of(item);
        for (auto& name : r_.strings(item, "names", sp)) route.names.push_back(lower(name));
        if (route.names.empty()) r_.error(item, sp, "missing required key 'names' (server names, or '*.example.com')");
        if (auto cl = r_.string(item, "cluster", sp, true)) route.cluster = *cl;
        l.sni.push_back(std::move(route));
      }
    }
    if (l.protocol == Protocol::tcp && l.cluster.empty() && !l.original_destination)
      r_.error(n, path, "a 'protocol: tcp' listener needs a 'cluster' (or 'original_destination: true')");
    if (!l.sni.empty() && l.tls)
      r_.error(n["sni"], path + ".sni", "a listener that terminates TLS ('tls') cannot also pass TLS through by SNI");
    if (auto routes = YamlReader::child(n, "routes"); l.protocol == Protocol::tcp && routes && routes->size() > 0)
      r_.error(*routes, path + ".routes", "a 'protocol: tcp' listener has no HTTP routes");
    if ((l.protocol == Protocol::http1 || l.protocol == Protocol::http2) && l.detects())
      r_.error(n, path, "'cluster', 'sni' and 'original_destination' need 'protocol: auto' (detection) or 'tcp'");
  }

  // A listener's (server) or a cluster's (client) `http2:` block.
  Http2 http2(const YAML::Node& n, const std::string& path, bool client) {
    Http2 h;
    const bool ok = client ? r_.mapping(n, path, {"max_concurrent_streams", "initial_stream_window_size",
                                                   "initial_connection_window_size", "max_header_list_size",
                                                   "ping_interval", "ping_timeout"})
                           : r_.mapping(n, path, {"max_concurrent_streams", "initial_stream_window_size",
                                                   "initial_connection_window_size", "max_header_list_size"});
    if (!ok) return h;
    constexpr std::uint64_t kMaxWindow = (1u << 31) - 1;
    if (auto v = r_.integer(n, "max_concurrent_streams", path, 1, kMaxWindow)) h.max_concurrent_streams = static_cast<std::uint32_t>(*v);
    if (auto v = r_.integer(n, "initial_stream_window_size", path, 65535, kMaxWindow))
      h.initial_stream_window_size = static_cast<std::uint32_t>(*v);
    if (auto v = r_.integer(n, "initial_connection_window_size", path, 65535, kMaxWindow))
      h.initial_connection_window_size = static_cast<std::uint32_t>(*v);
    if (auto v = r_.integer(n, "max_header_list_size", path, 1024, 16 << 20)) h.max_header_list_size = static_cast<std::uint32_t>(*v);
    if (auto d = r_.duration(n, "ping_interval", path)) h.ping_interval = *d;
    if (auto d = r_.duration(n, "ping_timeout", path)) {
      if (d->count() == 0) r_.error(n["ping_timeout"], path + ".ping_timeout", "must be greater than 0");
      h.ping_timeout = *d;
    }
    return h;
  }

  void listener(const YAML::Node& n, const std::string& path, Config& c) {
    if (!r_.mapping(n, path, {"name", "address", "direction", "filters", "routes", "max_request_line_bytes",
                              "max_request_headers_bytes", "request_headers_timeout", "idle_timeout",
                              "trust_request_headers", "max_authorities", "tls", "forward_client_cert",
                              "path_with_escaped_slashes_action", "protocol", "http2", "original_destination",
                              "cluster", "passthrough", "application_address", "detect_timeout", "opaque_ports",
                              "sni", "tunnel_idle_timeout", "max_connections"}))
      return;
    Listener l;
    l.mark = YamlReader::mark_of(n);
    if (auto name = r_.string(n, "name", path, true)) l.name = *name;
    if (auto a = r_.address(n, "address", path, true, true)) l.address = *a;
    if (auto d = r_.choice(n, "direction", path, {"inbound", "outbound"}))
      l.direction = *d == "inbound" ? Direction::inbound : Direction::outbound;
    if (auto v = r_.integer(n, "max_request_line_bytes", path, 64, 1 << 20)) l.max_request_line_bytes = *v;
    if (auto v = r_.integer(n, "max_request_headers_bytes", path, 256, 16 << 20)) l.max_request_headers_bytes = *v;
    if (auto d = r_.duration(n, "request_headers_timeout", path)) {
      if (d->count() == 0) r_.error(n["request_headers_timeout"], path + ".request_headers_timeout", "must be greater than 0");
      l.request_headers_timeout = *d;
    }
    if (auto d = r_.duration(n, "idle_timeout", path)) {
      if (d->count() == 0) r_.error(n["idle_timeout"], path + ".idle_timeout", "must be greater than 0");
      l.idle_timeout = *d;
    }
    if (auto b = r_.boolean(n, "trust_request_headers", path)) l.trust_request_headers = *b;
    if (auto v = r_.integer(n, "max_authorities", path, 0, 10'000)) l.max_authorities = *v;
    if (auto v = r_.integer(n, "max_connections", path, 0, 10'000'000)) l.max_connections = *v;
    if (auto t = YamlReader::child(n, "tls")) l.tls = tls(*t, path + ".tls", true);
    if (auto f = r_.choice(n, "forward_client_cert", path, {"sanitize", "forward_only", "append_forward", "sanitize_set"}))
      l.forward_client_cert = *f == "sanitize"         ? ForwardClientCert::sanitize
                              : *f == "forward_only"   ? ForwardClientCert::forward_only
                              : *f == "append_forward" ? ForwardClientCert::append_forward
                                                       : ForwardClientCert::sanitize_set;
    if (auto a = r_.choice(n, "path_with_escaped_slashes_action", path, {"keep", "reject", "unescape"}))
      l.path_with_escaped_slashes_action = *a == "keep"     ? EscapedSlashes::keep
                                           : *a == "reject" ? EscapedSlashes::reject
                                                            : EscapedSlashes::unescape;
    if (auto p = protocol(n, path, true)) l.protocol = *p;
    if (auto h = YamlReader::child(n, "http2")) l.http2 = http2(*h, path + ".http2", false);
    beyond_http(n, path, l);
    if (auto f = YamlReader::child(n, "filters"); f && r_.sequence(*f, path + ".filters")) {
      for (std::size_t i = 0; i < f->size(); ++i) {
        const auto item = (*f)[i];
        const auto fp = YamlReader::index(path + ".filters", i);
        if (!item.IsMap()) {
          r_.error(item, fp, "expected a mapping with a 'type'");
          continue;
        }
        if (auto type = r_.string(item, "type", fp, true))
          l.filters.push_back({*type, std::make_shared<const YAML::Node>(item), YamlReader::mark_of(item)});
      }
    }
    if (l.protocol == Protocol::tcp) {
      for (const auto& f : l.filters)
        if (f.type != "rbac")
          r_.error(f.mark, path + ".filters", "a 'protocol: tcp' listener takes only 'rbac' filters, not '" + f.type + "'");
    }
    auto routes = YamlReader::child(n, "routes");
    if (!routes) {
      // An original-destination listener sends HTTP to the destination's cluster.
      if (l.protocol != Protocol::tcp && !l.original_destination) r_.error(n, path, "missing required key 'routes'");
    } else if (r_.sequence(*routes, path + ".routes")) {
      if (routes->size() == 0 && l.protocol != Protocol::tcp && !l.original_destination)
        r_.error(*routes, path + ".routes", "needs at least one route");
      for (std::size_t i = 0; i < routes->size(); ++i)
        route((*routes)[i], YamlReader::index(path + ".routes", i), l, i);
    }
    if (l.name.empty()) return;
    for (const auto& other : c.listeners) {
      if (other.name == l.name) r_.error(n["name"], path + ".name", "duplicate listener name '" + l.name + "'");
      if (l.address.port != 0 && other.address == l.address)
        r_.error(n["address"], path + ".address",
                 "address " + l.address.to_string() + " is already used by listener '" + other.name + "'");
    }
    c.listeners.push_back(std::move(l));
  }

  void route(const YAML::Node& n, const std::string& path, Listener& l, std::size_t i) {
    if (!r_.mapping(n, path, {"name", "match", "cluster", "weighted_clusters", "direct_response", "timeout", "retry",
                              "retry_buffer_limit", "fallback", "request_headers_to_add", "request_headers_to_remove",
                              "upgrade", "per_filter_config"}))
      return;
    Route rt;
    rt.mark = YamlReader::mark_of(n);
    rt.name = r_.string(n, "name", path).value_or(l.name + "/" + std::to_string(i));
    if (auto m = YamlReader::child(n, "match")) match(*m, path + ".match", rt.match);
    if (auto cl = r_.string(n, "cluster", path)) rt.cluster = *cl;
    if (auto d = YamlReader::child(n, "direct_response")) rt.direct_response = direct_response(*d, path + ".direct_response");
    if (auto w = YamlReader::child(n, "weighted_clusters"); w && r_.sequence(*w, path + ".weighted_clusters")) {
      if (w->size() == 0) r_.error(*w, path + ".weighted_clusters", "needs at least one cluster");
      for (std::size_t i = 0; i < w->size(); ++i) {
        const auto item = (*w)[i];
        const auto wp = YamlReader::index(path + ".weighted_clusters", i);
        if (!r_.mapping(item, wp, {"cluster", "weight"})) continue;
        auto name = r_.string(item, "cluster", wp, true);
        auto weight = r_.integer(item, "weight", wp, 1, 1'000'000);
        if (!weight && !YamlReader::child(item, "weight")) r_.error(item, wp, "missing required key 'weight'");
        if (name && weight) rt.weighted_clusters.push_back({*name, static_cast<std::uint32_t>(*weight)});
      }
    }
    const int actions = YamlReader::child(n, "cluster").has_value() +
                        YamlReader::child(n, "weighted_clusters").has_value() +
                        YamlReader::child(n, "direct_response").has_value();
    if (actions != 1)
      r_.error(n, path, "needs exactly one of 'cluster', 'weighted_clusters' or 'direct_response'");
    if (auto t = r_.duration(n, "timeout", path)) rt.timeout = *t;
    if (auto r = YamlReader::child(n, "retry")) rt.retry = retry(*r, path + ".retry");
    if (auto v = r_.integer(n, "retry_buffer_limit", path, 0, 64 << 20)) rt.retry_buffer_limit = *v;
    if (auto f = YamlReader::child(n, "fallback")) {
      const auto fp = path + ".fallback";
      if (f->IsMap() && YamlReader::child(*f, "cluster")) {
        if (r_.mapping(*f, fp, {"cluster"})) {
          // A list or a mapping here is reported by string(); nothing to fall back to then.
          if (auto cluster = r_.string(*f, "cluster", fp)) rt.fallback = Fallback{*cluster, std::nullopt};
        }
      } else {
        rt.fallback = Fallback{"", direct_response(*f, fp)};
      }
    }
    rt.request_headers_to_add = r_.header_values(n, "request_headers_to_add", path);
    for (auto& h : r_.strings(n, "request_headers_to_remove", path)) rt.request_headers_to_remove.push_back(lower(h));
    if (YamlReader::child(n, "upgrade")) {
      rt.upgrade.clear();
      for (auto& u : r_.strings(n, "upgrade", path)) {
        if (lower(u) == "h2c") {
          r_.error(n["upgrade"], path + ".upgrade", "'h2c' is not an upgrade a proxy forwards (RFC 9113 §3.1)");
          continue;
        }
        rt.upgrade.push_back(lower(u));
      }
    }
    if (auto pf = YamlReader::child(n, "per_filter_config")) per_filter_config(*pf, path + ".per_filter_config", l, rt);
    for (const auto& other : l.routes)
      if (other.name == rt.name) r_.error(n, path, "duplicate route name '" + rt.name + "' in listener '" + l.name + "'");
    l.routes.push_back(std::move(rt));
  }

  // A route's `per_filter_config`: filter type -> `disabled: true`, or the
  // settings its factory parses later (with the listener's filters).
  void per_filter_config(const YAML::Node& n, const std::string& path, const Listener& l, Route& rt) {
    if (!n.IsMap()) {
      r_.error(n, path, "expected a mapping of filter type to settings");
      return;
    }
    for (auto it = n.begin(); it != n.end(); ++it) {
      const auto type = r_.scalar(it->first, path);
      if (!type) continue;
      const auto kp = YamlReader::join(path, *type);
      const YAML::Node settings = it->second;
      std::vector<std::string_view> types;
      bool found = false;
      for (const auto& f : l.filters) {
        types.push_back(f.type);
        found = found || f.type == *type;
      }
      if (!found) {
        std::string message = "listener '" + l.name + "' has no '" + *type + "' filter";
        if (auto near = closest_match(*type, types); !near.empty()) message += "; did you mean '" + near + "'?";
        r_.error(it->first, kp, message);
        continue;
      }
      if (!settings.IsMap()) {
        r_.error(settings, kp, "expected a mapping: 'disabled: true', or the filter's own settings");
        continue;
      }
      if (!YamlReader::child(settings, "disabled")) {
        rt.per_filter_config.push_back({*type, std::make_shared<const YAML::Node>(settings), YamlReader::mark_of(settings)});
        continue;
      }
      if (settings.size() != 1) {
        r_.error(settings, kp, "'disabled' takes no other settings beside it");
        continue;
      }
      if (auto off = r_.boolean(settings, "disabled", kp); off && *off) {
        rt.disabled_filters.resize(l.filters.size());
        for (std::size_t i = 0; i < l.filters.size(); ++i)
          if (l.filters[i].type == *type) rt.disabled_filters[i] = true;
      }
    }
  }

  void match(const YAML::Node& n, const std::string& path, RouteMatch& m) {
    if (!r_.mapping(n, path, {"prefix", "path", "regex", "hosts", "methods", "headers"})) return;
    m.prefix = r_.string(n, "prefix", path);
    m.path = r_.string(n, "path", path);
    m.regex = r_.string(n, "regex", path);
    const int kinds = m.prefix.has_value() + m.path.has_value() + m.regex.has_value();
    if (kinds > 1) r_.error(n, path, "use only one of 'prefix', 'path' or 'regex'");
    for (const auto* p : {&m.prefix, &m.path}) {
      if (*p && !p->value().starts_with('/')) r_.error(n, path, "paths start with '/': '" + p->value() + "'");
    }
    if (m.regex) check_regex(r_, n["regex"], path + ".regex", *m.regex);
    m.hosts = r_.strings(n, "hosts", path);
    for (auto& method : r_.strings(n, "methods", path)) {
      if (!is_token(method)) r_.error(n["methods"], path + ".methods", "invalid method '" + method + "'");
      m.methods.push_back(upper(method));
    }
    if (auto hs = YamlReader::child(n, "headers")) m.headers = read_header_matches(r_, *hs, path + ".headers");
  }

  RetryPolicy retry(const YAML::Node& n, const std::string& path) {
    RetryPolicy p;
    if (!r_.mapping(n, path, {"retry_on", "retriable_status_codes", "num_retries", "per_try_timeout", "backoff",
                              "retriable_methods", "grpc_response_buffer_limit"}))
      return p;
    for (const auto& on : r_.strings(n, "retry_on", path)) {
      const auto bit = retry_on_bit(on);
      if (!bit) {
        r_.error(n["retry_on"], path + ".retry_on",
                 "invalid value '" + on + "' (one of: " + std::string(kRetryOnNames) + ")");
        continue;
      }
      p.retry_on |= bit;
    }
    if (!YamlReader::child(n, "retry_on")) r_.error(n, path, "missing required key 'retry_on'");
    for (const auto& code : r_.strings(n, "retriable_status_codes", path)) {
      char* end = nullptr;
      const long v = std::strtol(code.c_str(), &end, 10);
      if (*end || v < 100 || v > 599) {
        r_.error(n["retriable_status_codes"], path + ".retriable_status_codes", "invalid status code '" + code + "'");
      } else {
        p.retriable_status_codes.push_back(static_cast<int>(v));
      }
    }
    if (auto v = r_.integer(n, "num_retries", path, 0, 10)) p.num_retries = static_cast<std::uint32_t>(*v);
    if (auto d = r_.duration(n, "per_try_timeout", path)) p.per_try_timeout = *d;
    if (auto v = r_.integer(n, "grpc_response_buffer_limit", path, 0, 16 << 20))
      p.grpc_response_buffer_limit = static_cast<std::size_t>(*v);
    if (auto b = YamlReader::child(n, "backoff"); b && r_.mapping(*b, path + ".backoff", {"base", "max"})) {
      if (auto d = r_.duration(*b, "base", path + ".backoff")) p.backoff_base = *d;
      p.backoff_max = p.backoff_base * 10;
      if (auto d = r_.duration(*b, "max", path + ".backoff")) p.backoff_max = *d;
      if (p.backoff_max < p.backoff_base) r_.error(*b, path + ".backoff", "max must not be below base");
    }
    if (YamlReader::child(n, "retriable_methods")) {
      p.retriable_methods.clear();
      for (auto& m : r_.strings(n, "retriable_methods", path)) p.retriable_methods.push_back(upper(m));
    }
    return p;
  }

  DirectResponse direct_response(const YAML::Node& n, const std::string& path) {
    DirectResponse d;
    if (!r_.mapping(n, path, {"status", "body", "headers"})) return d;
    if (auto s = r_.integer(n, "status", path, 100, 599)) d.status = static_cast<int>(*s);
    if (auto b = r_.string(n, "body", path)) d.body = *b;
    d.headers = r_.header_values(n, "headers", path);
    return d;
  }

  void cross_check(const YAML::Node& root, const Config& c) {
    std::vector<std::string_view> cluster_names;
    for (const auto& cl : c.clusters) cluster_names.push_back(cl.name);
    if (c.tracing && !c.tracing->collector_cluster.empty() && !c.find_cluster(c.tracing->collector_cluster)) {
      std::string message = "unknown cluster '" + c.tracing->collector_cluster + "'";
      if (auto near = closest_match(c.tracing->collector_cluster, cluster_names); !near.empty())
        message += "; did you mean '" + near + "'?";
      r_.error(root["tracing"]["collector_cluster"], "tracing.collector_cluster", message);
    }
    for (const auto& l : c.listeners)
      for (const auto& f : l.filters)
        if (f.type == "tracing" && !c.tracing)
          r_.error(f.mark, "listeners." + l.name + ".filters",
                   "the tracing filter needs a top-level 'tracing' section (service_name, collector_cluster)");
    auto unknown_cluster = [&](std::string_view name, Mark at, const std::string& what) {
      if (c.find_cluster(name)) return;
      std::string message = what + " names unknown cluster '" + std::string(name) + "'";
      if (auto near = closest_match(name, cluster_names); !near.empty()) message += "; did you mean '" + near + "'?";
      r_.error(at, "", message);
    };
    if (c.xds && !c.xds->cluster.empty()) {
      const auto* x = c.find_cluster(c.xds->cluster);
      if (!x) {
        unknown_cluster(c.xds->cluster, c.xds->mark, "xds.cluster");
      } else if (x->protocol != Protocol::http2) {
        r_.error(c.xds->mark, "xds.cluster",
                 "cluster '" + x->name + "' must have 'protocol: http2': the control plane speaks gRPC");
      }
    }
    for (const auto& l : c.listeners) {
      if (!l.cluster.empty()) unknown_cluster(l.cluster, l.mark, "listener '" + l.name + "'");
      for (const auto& s : l.sni) unknown_cluster(s.cluster, s.mark, "listener '" + l.name + "' sni route");
    }
    auto listeners = root["listeners"];
    for (std::size_t li = 0; li < c.listeners.size(); ++li) {
      for (const auto& rt : c.listeners[li].routes) {
        std::vector<std::string_view> named;
        if (!rt.cluster.empty()) named.push_back(rt.cluster);
        if (rt.fallback && !rt.fallback->cluster.empty()) named.push_back(rt.fallback->cluster);
        for (const auto& w : rt.weighted_clusters) named.push_back(w.cluster);
        for (auto name : named) {
          if (c.find_cluster(name)) continue;
          if (c.xds && c.xds->clusters) continue;  // the control plane may send it (docs/xds.md)
          std::string message = "route '" + rt.name + "' names unknown cluster '" + std::string(name) + "'";
          if (auto near = closest_match(name, cluster_names); !near.empty())
            message += "; did you mean '" + near + "'?";
          r_.error(rt.mark, "", message);
        }
      }
    }
  }

  YamlReader r_;
};

}  // namespace

LoadResult load_string(std::string_view yaml, const std::string& file) {
  LoadResult result;
  Config c;
  c.file = file;
  try {
    const auto root = YAML::Load(std::string(yaml));
    Loader(file, result.errors).load(root, c);
  } catch (const YAML::Exception& e) {
    result.errors.push_back({file, {e.mark.line + 1, e.mark.column + 1}, e.msg});
  }
  if (c.workers == 0) c.workers = std::max(1u, std::thread::hardware_concurrency());
  if (result.errors.empty()) result.config = std::move(c);
  return result;
}

LoadResult load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadResult r;
    r.errors.push_back({path, {}, std::string("cannot read file: ") + std::strerror(errno)});
    return r;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return load_string(text.str(), path);
}

}  // namespace outrigger::config
