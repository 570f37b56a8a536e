// config::Config as JSON, for /config_dump. Durations are written as
// milliseconds ("15000ms") so the dump can be read back as config; filters
// are written as their YAML was (scalars as strings, which YAML reads back
// the same).
#include <yaml-cpp/yaml.h>

#include <boost/json.hpp>

#include "outrigger/server/admin.hpp"

namespace outrigger::server {

namespace json = boost::json;

namespace {

json::value yaml_json(const YAML::Node& n);

json::string duration(config::Duration d) { return json::string(std::to_string(d.count()) + "ms"); }

json::object headers(const std::vector<config::HeaderValue>& hs) {
  json::object o;
  for (const auto& h : hs) o[h.name] = h.value;
  return o;
}

json::object route_json(const config::Route& r, const config::Listener& l) {
  json::object match;
  const auto& m = r.match;
  if (m.prefix) match["prefix"] = *m.prefix;
  if (m.path) match["path"] = *m.path;
  if (m.regex) match["regex"] = *m.regex;
  if (!m.hosts.empty()) match["hosts"] = json::value_from(m.hosts);
  if (!m.methods.empty()) match["methods"] = json::value_from(m.methods);
  if (!m.headers.empty()) {
    json::array hs;
    for (const auto& h : m.headers) {
      json::object o{{"name", h.name}};
      if (h.exact) o["exact"] = *h.exact;
      if (h.prefix) o["prefix"] = *h.prefix;
      if (h.regex) o["regex"] = *h.regex;
      if (h.invert) o["invert"] = true;
      hs.push_back(std::move(o));
    }
    match["headers"] = std::move(hs);
  }
  json::object o{{"name", r.name}, {"match", std::move(match)}, {"timeout", duration(r.timeout)}};
  if (!r.cluster.empty()) o["cluster"] = r.cluster;
  if (!r.weighted_clusters.empty()) {
    json::array ws;
    for (const auto& w : r.weighted_clusters) ws.push_back(json::object{{"cluster", w.cluster}, {"weight", w.weight}});
    o["weighted_clusters"] = std::move(ws);
  }
  if (r.direct_response) {
    o["direct_response"] = json::object{{"status", r.direct_response->status},
                                        {"body", r.direct_response->body},
                                        {"headers", headers(r.direct_response->headers)}};
  }
  if (r.retry) {
    const auto& p = *r.retry;
    json::array on;
    for (std::string_view name : {"5xx", "gateway-error", "reset", "connect-failure", "retriable-status-codes",
                                  "cancelled", "deadline-exceeded", "resource-exhausted", "internal", "unavailable"})
      if (p.retry_on & config::retry_on_bit(name)) on.push_back(json::string(name));
    o["retry"] = json::object{{"retry_on", std::move(on)},
                              {"retriable_status_codes", json::value_from(p.retriable_status_codes)},
                              {"num_retries", p.num_retries},
                              {"per_try_timeout", duration(p.per_try_timeout)},
                              {"backoff", json::object{{"base", duration(p.backoff_base)}, {"max", duration(p.backoff_max)}}},
                              {"retriable_methods", json::value_from(p.retriable_methods)},
                              {"grpc_response_buffer_limit", p.grpc_response_buffer_limit}};
  }
  o["retry_buffer_limit"] = r.retry_buffer_limit;
  if (r.fallback) {
    if (!r.fallback->cluster.empty()) {
      o["fallback"] = json::object{{"cluster", r.fallback->cluster}};
    } else if (const auto& f = r.fallback->response) {
      o["fallback"] = json::object{{"status", f->status}, {"body", f->body}, {"headers", headers(f->headers)}};
    }
  }
  if (!r.request_headers_to_add.empty()) o["request_headers_to_add"] = headers(r.request_headers_to_add);
  if (!r.request_headers_to_remove.empty()) o["request_headers_to_remove"] = json::value_from(r.request_headers_to_remove);
  o["upgrade"] = json::value_from(r.upgrade);
  json::object per_filter;
  for (const auto& pf : r.per_filter_config) per_filter[pf.type] = yaml_json(*pf.node);
  for (std::size_t i = 0; i < r.disabled_filters.size() && i < l.filters.size(); ++i)
    if (r.disabled_filters[i]) per_filter[l.filters[i].type] = json::object{{"disabled", true}};
  if (!per_filter.empty()) o["per_filter_config"] = std::move(per_filter);
  return o;
}

}  // namespace

namespace {

std::string_view protocol_name(config::Protocol p) {
  switch (p) {
    case config::Protocol::http1: return "http1";
    case config::Protocol::http2: return "http2";
    case config::Protocol::tcp: return "tcp";
    case config::Protocol::auto_detect: break;
  }
  return "auto";
}

json::object http2_json(const config::Http2& h, bool client) {
  json::object o{{"max_concurrent_streams", h.max_concurrent_streams},
                 {"initial_stream_window_size", h.initial_stream_window_size},
                 {"initial_connection_window_size", h.initial_connection_window_size}};
  if (h.max_header_list_size) o["max_header_list_size"] = h.max_header_list_size;  // 0: the default
  if (client) {
    o["ping_interval"] = duration(h.ping_interval);
    o["ping_timeout"] = duration(h.ping_timeout);
  }
  return o;
}

json::object tls_json(const config::Tls& t, bool server) {
  json::object o;
  if (!t.cert.empty()) o["cert"] = t.cert;
  if (!t.key.empty()) o["key"] = t.key;
  if (!t.ca.empty()) o["ca"] = t.ca;
  if (server) o["mode"] = t.mode == config::Tls::Mode::strict ? "strict" : "permissive";
  o["min_version"] = t.min_version;
  if (!server && !t.sni.empty()) o["sni"] = t.sni;
  if (!t.verify_identity.empty()) {
    json::array ids;
    for (const auto& id : t.verify_identity) ids.push_back(json::string(id));
    o["verify_identity"] = std::move(ids);
  }
  return o;
}

json::value yaml_json(const YAML::Node& n) {
  if (n.IsMap()) {
    json::object o;
    for (const auto& kv : n) o[kv.first.as<std::string>()] = yaml_json(kv.second);
    return o;
  }
  if (n.IsSequence()) {
    json::array a;
    for (const auto& v : n) a.push_back(yaml_json(v));
    return a;
  }
  if (n.IsScalar()) return json::string(n.Scalar());
  return nullptr;
}

std::string_view propagation_name(config::Propagation p) {
  switch (p) {
    case config::Propagation::b3: return "b3";
    case config::Propagation::b3_single: return "b3_single";
    case config::Propagation::w3c: return "w3c";
  }
  return "b3";
}

std::string_view escaped_slashes_name(config::EscapedSlashes a) {
  switch (a) {
    case config::EscapedSlashes::keep: return "keep";
    case config::EscapedSlashes::reject: return "reject";
    case config::EscapedSlashes::unescape: return "unescape";
  }
  return "keep";
}

std::string_view forward_client_cert_name(config::ForwardClientCert f) {
  switch (f) {
    case config::ForwardClientCert::sanitize: return "sanitize";
    case config::ForwardClientCert::forward_only: return "forward_only";
    case config::ForwardClientCert::append_forward: return "append_forward";
    case config::ForwardClientCert::sanitize_set: return "sanitize_set";
  }
  return "sanitize";
}

}  // namespace

std::string config_to_json(const config::Config& c) {
  json::array listeners;
  for (const auto& l : c.listeners) {
    json::array routes, filters;
    for (const auto& r : l.routes) routes.push_back(route_json(r, l));
    for (const auto& f : l.filters) filters.push_back(f.node ? yaml_json(*f.node) : json::object{{"type", f.type}});
    json::object listener{
        {"name", l.name},
        {"address", l.address.to_string()},
        {"direction", l.direction == config::Direction::inbound ? "inbound" : "outbound"},
        {"max_request_line_bytes", l.max_request_line_bytes},
        {"max_request_headers_bytes", l.max_request_headers_bytes},
        {"request_headers_timeout", duration(l.request_headers_timeout)},
        {"idle_timeout", duration(l.idle_timeout)},
        {"trust_request_headers", l.trust_request_headers},
        {"max_authorities", l.max_authorities},
        {"max_connections", l.max_connections},
        {"forward_client_cert", forward_client_cert_name(l.forward_client_cert)},
        {"path_with_escaped_slashes_action", escaped_slashes_name(l.path_with_escaped_slashes_action)},
        {"filters", std::move(filters)},
        {"routes", std::move(routes)}};
    listener["protocol"] = protocol_name(l.protocol);
    listener["http2"] = http2_json(l.http2, false);
    if (l.detects()) {
      listener["original_destination"] = l.original_destination;
      if (!l.cluster.empty()) listener["cluster"] = l.cluster;
      if (l.original_destination) {
        listener["passthrough"] = l.passthrough == config::Passthrough::allow ? "allow" : "deny";
        listener["application_address"] = l.application_address.to_string();
      }
      listener["detect_timeout"] = duration(l.detect_timeout);
      listener["opaque_ports"] = json::value_from(l.opaque_ports);
      listener["tunnel_idle_timeout"] = duration(l.tunnel_idle_timeout);
      json::array sni;
      for (const auto& s : l.sni) sni.push_back(json::object{{"names", json::value_from(s.names)}, {"cluster", s.cluster}});
      if (!sni.empty()) listener["sni"] = std::move(sni);
    }
    if (l.tls) listener["tls"] = tls_json(*l.tls, true);
    listeners.push_back(std::move(listener));
  }
  json::array clusters;
  for (const auto& cl : c.clusters) {
    json::array eps;
    for (const auto& e : cl.endpoints) {
      if (e.weight == 1) {
        eps.push_back(json::string(e.address.to_string()));
      } else {
        eps.push_back(json::object{{"address", e.address.to_string()}, {"weight", e.weight}});
      }
    }
    const auto& cb = cl.circuit_breakers;
    json::object cluster{
        {"name", cl.name},
        {"source", cl.from_xds ? "xds" : "file"},
        {"endpoints", std::move(eps)},
        {"lb_policy", cl.lb_policy == config::LbPolicy::round_robin     ? "round_robin"
                      : cl.lb_policy == config::LbPolicy::least_request ? "least_request"
                                                                        : "random"},
        {"connect_timeout", duration(cl.connect_timeout)},
        {"connection_pool", json::object{{"max_idle_per_endpoint", cl.connection_pool.max_idle_per_endpoint},
                                         {"idle_timeout", duration(cl.connection_pool.idle_timeout)},
                                         {"max_requests_per_connection",
                                          cl.connection_pool.max_requests_per_connection}}},
        {"circuit_breakers", json::object{{"max_connections", cb.max_connections},
                                          {"max_pending_requests", cb.max_pending_requests},
                                          {"max_requests", cb.max_requests},
                                          {"max_retries", cb.max_retries}}},
        {"retry_budget", json::object{{"ratio", cl.retry_budget.ratio},
                                      {"min_retries_per_second", cl.retry_budget.min_retries_per_second}}}};
    if (const auto& b = cl.breaker) {
      cluster["breaker"] = json::object{{"failure_rate", b->failure_rate},
                                        {"minimum_requests", b->minimum_requests},
                                        {"window", duration(b->window)},
                                        {"slow_call_duration", duration(b->slow_call_duration)},
                                        {"open_duration", duration(b->open_duration)},
                                        {"half_open_requests", b->half_open_requests}};
    }
    if (const auto& od = cl.outlier_detection) {
      cluster["outlier_detection"] = json::object{{"consecutive_5xx", od->consecutive_5xx},
                                                  {"consecutive_gateway_failure", od->consecutive_gateway_failure},
                                                  {"interval", duration(od->interval)},
                                                  {"base_ejection_time", duration(od->base_ejection_time)},
                                                  {"max_ejection_time", duration(od->max_ejection_time)},
                                                  {"max_ejection_percent", od->max_ejection_percent}};
    }
    if (const auto& hc = cl.health_check) {
      json::object h{{"path", hc->path},
                     {"interval", duration(hc->interval)},
                     {"timeout", duration(hc->timeout)},
                     {"unhealthy_threshold", hc->unhealthy_threshold},
                     {"healthy_threshold", hc->healthy_threshold}};
      if (!hc->host.empty()) h["host"] = hc->host;
      cluster["health_check"] = std::move(h);
    }
    if (cl.type != config::ClusterType::static_) {
      using F = config::DnsLookupFamily;
      const auto f = cl.dns.lookup_family;
      cluster["type"] = cl.type == config::ClusterType::strict_dns ? "strict_dns" : "logical_dns";
      cluster["dns_refresh_rate"] = duration(cl.dns.refresh_rate);
      cluster["dns_timeout"] = duration(cl.dns.timeout);
      cluster["respect_dns_ttl"] = cl.dns.respect_ttl;
      cluster["dns_lookup_family"] = f == F::v4_only        ? "v4_only"
                                     : f == F::v6_only      ? "v6_only"
                                     : f == F::v4_preferred ? "v4_preferred"
                                     : f == F::auto_        ? "auto"
                                                            : "all";
      json::array resolvers;
      for (const auto& r : cl.dns.resolvers) resolvers.push_back(json::string(r.to_string()));
      if (!resolvers.empty()) cluster["dns_resolvers"] = std::move(resolvers);
    }
    cluster["protocol"] = protocol_name(cl.protocol);
    cluster["http2"] = http2_json(cl.http2, true);
    if (cl.tls) cluster["tls"] = tls_json(*cl.tls, false);
    clusters.push_back(std::move(cluster));
  }
  json::object access_log{{"enabled", c.access_log.enabled},
                          {"path", c.access_log.path},
                          {"format", c.access_log.format == config::AccessLogFormat::json ? "json" : "text"}};
  if (c.access_log.format == config::AccessLogFormat::text) access_log["text_format"] = c.access_log.text_format;
  json::object root{
      {"admin", json::object{{"enabled", c.admin.enabled}, {"address", c.admin.address.to_string()}}},
      {"workers", c.workers},
      {"log_level", c.log_level},
      {"drain_timeout", duration(c.drain_timeout)},
      {"outbound_drain_idle", duration(c.outbound_drain_idle)},
      {"socket_mark", c.socket_mark},
      {"file_watch_interval", duration(c.file_watch_interval)},
      {"access_log", std::move(access_log)},
      {"overload", json::object{{"max_downstream_connections", c.overload.max_downstream_connections},
                                {"max_requests_per_worker", c.overload.max_requests_per_worker}}},
      {"listeners", std::move(listeners)},
      {"clusters", std::move(clusters)}};
  if (const auto& x = c.xds) {
    json::object metadata;
    for (const auto& [k, v] : x->node_metadata) metadata[k] = v;
    root["xds"] = json::object{{"cluster", x->cluster},
                               {"node", json::object{{"id", x->node_id}, {"cluster", x->node_cluster},
                                                     {"metadata", std::move(metadata)}}},
                               {"resources", x->clusters ? json::array{"clusters"} : json::array{}},
                               {"initial_fetch_timeout", duration(x->initial_fetch_timeout)},
                               {"clusters_version", x->clusters_version},
                               {"endpoints_version", x->endpoints_version}};
  }
  if (const auto& t = c.tracing) {
    json::array propagation;
    for (auto p : t->propagation) propagation.push_back(json::string(propagation_name(p)));
    root["tracing"] = json::object{{"service_name", t->service_name},
                                   {"collector_cluster", t->collector_cluster},
                                   {"collector_path", t->collector_path},
                                   {"sample_rate", t->sample_rate},
                                   {"propagation", std::move(propagation)},
                                   {"max_queue_spans", t->max_queue_spans},
                                   {"flush_interval", duration(t->flush_interval)},
                                   {"max_batch_spans", t->max_batch_spans}};
  }
  return json::serialize(root);
}

}  // namespace outrigger::server
