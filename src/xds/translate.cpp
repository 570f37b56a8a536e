#include "xds/translate.hpp"

#include <arpa/inet.h>

#include <fmt/format.h>
#include <algorithm>

#include "envoy/extensions/transport_sockets/tls/v3/tls.pb.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb.h"

namespace outrigger::xds {

namespace {

namespace cluster_v3 = envoy::config::cluster::v3;
namespace core_v3 = envoy::config::core::v3;
namespace endpoint_v3 = envoy::config::endpoint::v3;
namespace tls_v3 = envoy::extensions::transport_sockets::tls::v3;
namespace http_v3 = envoy::extensions::upstreams::http::v3;
using Cluster = cluster_v3::Cluster;

constexpr std::string_view kHttpProtocolOptions = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

// Collects a resource's errors, each prefixed with what it is ("Cluster 'x': ").
class Report {
 public:
  Report(std::string what, std::vector<std::string>& out) : what_(std::move(what)), out_(out), before_(out.size()) {}
  template <class... Args>
  void error(fmt::format_string<Args...> f, Args&&... args) {
    out_.push_back(what_ + ": " + fmt::format(f, std::forward<Args>(args)...));
  }
  bool ok() const { return out_.size() == before_; }

 private:
  std::string what_;
  std::vector<std::string>& out_;
  std::size_t before_;
};

config::Duration millis(const google::protobuf::Duration& d) {
  return config::Duration(d.seconds() * 1000 + d.nanos() / 1'000'000);
}

// A Duration that must be positive; `field` names it in the error.
void positive(Report& r, const google::protobuf::Duration& d, std::string_view field, config::Duration& out) {
  const auto ms = millis(d);
  if (ms.count() <= 0) {
    r.error("{} must be at least 1ms", field);
    return;
  }
  out = ms;
}

bool is_ip(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// A certificate, key or CA: Outrigger reads and watches files (config::Tls).
std::string file_of(Report& r, const core_v3::DataSource& d, std::string_view field) {
  switch (d.specifier_case()) {
    case core_v3::DataSource::kFilename: return d.filename();
    case core_v3::DataSource::SPECIFIER_NOT_SET: r.error("{} is empty", field); return {};
    default: r.error("{}: only 'filename' is supported (not inline bytes or strings)", field); return {};
  }
}

// match_typed_subject_alt_names as Outrigger's identity patterns ('*' any run).
void identities(Report& r, const tls_v3::CertificateValidationContext& v, std::vector<std::string>& out) {
  for (int i = 0; i < v.match_typed_subject_alt_names_size(); ++i) {
    const auto& san = v.match_typed_subject_alt_names(i);
    const auto field = fmt::format("validation_context.match_typed_subject_alt_names[{}]", i);
    if (san.san_type() != tls_v3::SubjectAltNameMatcher::URI && san.san_type() != tls_v3::SubjectAltNameMatcher::DNS) {
      r.error("{}.san_type: only URI and DNS are supported", field);
      continue;
    }
    const auto& m = san.matcher();
    if (m.ignore_case()) r.error("{}.matcher.ignore_case is not supported", field);
    switch (m.match_pattern_case()) {
      case envoy::type::matcher::v3::StringMatcher::kExact: out.push_back(m.exact()); break;
      case envoy::type::matcher::v3::StringMatcher::kPrefix: out.push_back(m.prefix() + "*"); break;
      case envoy::type::matcher::v3::StringMatcher::kSuffix: out.push_back("*" + m.suffix()); break;
      default: r.error("{}.matcher: only exact, prefix and suffix are supported", field); break;
    }
  }
  // Deprecated in the API, and still what older control planes send: named, not ignored.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  if (v.match_subject_alt_names_size() > 0)
    r.error("validation_context.match_subject_alt_names is not supported (use match_typed_subject_alt_names)");
#pragma GCC diagnostic pop
}

std::optional<config::Tls> upstream_tls(Report& r, const core_v3::TransportSocket& ts) {
  if (!ts.has_typed_config() || !ts.typed_config().Is<tls_v3::UpstreamTlsContext>()) {
    r.error("transport_socket: only envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext is supported "
            "(got '{}')", ts.has_typed_config() ? ts.typed_config().type_url() : ts.name());
    return std::nullopt;
  }
  tls_v3::UpstreamTlsContext ctx;
  if (!ts.typed_config().UnpackTo(&ctx)) {
    r.error("transport_socket.typed_config: not a valid UpstreamTlsContext");
    return std::nullopt;
  }
  config::Tls t;
  t.sni = ctx.sni();
  const auto& common = ctx.common_tls_context();
  if (common.tls_certificates_size() > 1) r.error("common_tls_context.tls_certificates: at most one is supported");
  if (common.tls_certificates_size() == 1) {
    const auto& cert = common.tls_certificates(0);
    t.cert = file_of(r, cert.certificate_chain(), "common_tls_context.tls_certificates[0].certificate_chain");
    t.key = file_of(r, cert.private_key(), "common_tls_context.tls_certificates[0].private_key");
  }
  if (common.tls_certificate_sds_secret_configs_size() > 0)
    r.error("common_tls_context.tls_certificate_sds_secret_configs: SDS is not supported yet");
  switch (common.validation_context_type_case()) {
    case tls_v3::CommonTlsContext::kValidationContext: {
      const auto& v = common.validation_context();
      t.ca = file_of(r, v.trusted_ca(), "common_tls_context.validation_context.trusted_ca");
      identities(r, v, t.verify_identity);
      break;
    }
    case tls_v3::CommonTlsContext::VALIDATION_CONTEXT_TYPE_NOT_SET:
      r.error("common_tls_context: a validation_context with trusted_ca is required "
              "(Outrigger does not connect to unverified upstreams)");
      break;
    default: r.error("common_tls_context: only an inline validation_context is supported (not SDS)"); break;
  }
  switch (common.tls_params().tls_minimum_protocol_version()) {
    case tls_v3::TlsParameters::TLS_AUTO:
    case tls_v3::TlsParameters::TLSv1_2: t.min_version = "1.2"; break;
    case tls_v3::TlsParameters::TLSv1_3: t.min_version = "1.3"; break;
    default: r.error("common_tls_context.tls_params.tls_minimum_protocol_version: TLSv1_2 or TLSv1_3"); break;
  }
  return t;
}

void protocol(Report& r, const Cluster& c, config::Cluster& out) {
  // Deprecated in the API, and still what many control planes send.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  if (c.has_http2_protocol_options()) out.protocol = config::Protocol::http2;
#pragma GCC diagnostic pop
  const auto it = c.typed_extension_protocol_options().find(std::string(kHttpProtocolOptions));
  if (it == c.typed_extension_protocol_options().end()) return;
  http_v3::HttpProtocolOptions options;
  if (!it->second.UnpackTo(&options)) {
    r.error("typed_extension_protocol_options['{}']: not a valid HttpProtocolOptions", kHttpProtocolOptions);
    return;
  }
  switch (options.upstream_protocol_options_case()) {
    case http_v3::HttpProtocolOptions::kExplicitHttpConfig:
      if (options.explicit_http_config().has_http2_protocol_options()) {
        out.protocol = config::Protocol::http2;
      } else if (options.explicit_http_config().has_http3_protocol_options()) {
        r.error("HttpProtocolOptions.explicit_http_config.http3_protocol_options: HTTP/3 is not supported");
      } else {
        out.protocol = config::Protocol::http1;
      }
      break;
    case http_v3::HttpProtocolOptions::kAutoConfig: out.protocol = config::Protocol::auto_detect; break;
    case http_v3::HttpProtocolOptions::kUseDownstreamProtocolConfig:
      r.error("HttpProtocolOptions.use_downstream_protocol_config is not supported");
      break;
    default: break;
  }
}

void circuit_breakers(const Cluster& c, config::CircuitBreakers& out) {
  // Outrigger has one priority: the DEFAULT thresholds apply; HIGH ones are ignored.
  for (const auto& t : c.circuit_breakers().thresholds()) {
    if (t.priority() != core_v3::DEFAULT) continue;
    if (t.has_max_connections()) out.max_connections = t.max_connections().value();
    if (t.has_max_pending_requests()) out.max_pending_requests = t.max_pending_requests().value();
    if (t.has_max_requests()) out.max_requests = t.max_requests().value();
    if (t.has_max_retries()) out.max_retries = t.max_retries().value();
  }
}

void outlier_detection(Report& r, const Cluster& c, config::Cluster& out) {
  if (!c.has_outlier_detection()) return;
  const auto& o = c.outlier_detection();
  config::OutlierDetection d;
  if (o.has_consecutive_5xx()) d.consecutive_5xx = o.consecutive_5xx().value();
  if (o.has_consecutive_gateway_failure()) d.consecutive_gateway_failure = o.consecutive_gateway_failure().value();
  // Envoy enforces consecutive 5xx by default and consecutive gateway failures
  // only when asked; Outrigger enforces a detector fully or not at all.
  if (o.has_enforcing_consecutive_5xx() && o.enforcing_consecutive_5xx().value() == 0) d.consecutive_5xx = 0;
  if (!o.has_enforcing_consecutive_gateway_failure() || o.enforcing_consecutive_gateway_failure().value() == 0)
    d.consecutive_gateway_failure = 0;
  if (o.has_interval()) positive(r, o.interval(), "outlier_detection.interval", d.interval);
  if (o.has_base_ejection_time())
    positive(r, o.base_ejection_time(), "outlier_detection.base_ejection_time", d.base_ejection_time);
  if (o.has_max_ejection_time())
    positive(r, o.max_ejection_time(), "outlier_detection.max_ejection_time", d.max_ejection_time);
  if (o.has_max_ejection_percent()) d.max_ejection_percent = std::min(100u, o.max_ejection_percent().value());
  out.outlier_detection = d;
}

void health_check(Report& r, const Cluster& c, config::Cluster& out) {
  if (c.health_checks_size() == 0) return;
  if (c.health_checks_size() > 1) r.error("health_checks: at most one is supported");
  const auto& h = c.health_checks(0);
  if (h.health_checker_case() != core_v3::HealthCheck::kHttpHealthCheck) {
    r.error("health_checks[0]: only http_health_check is supported");
    return;
  }
  config::HealthCheck hc;
  hc.path = h.http_health_check().path();
  if (hc.path.empty() || hc.path.front() != '/') r.error("health_checks[0].http_health_check.path must start with '/'");
  hc.host = h.http_health_check().host();
  positive(r, h.interval(), "health_checks[0].interval", hc.interval);
  positive(r, h.timeout(), "health_checks[0].timeout", hc.timeout);
  if (h.has_unhealthy_threshold()) hc.unhealthy_threshold = std::max(1u, h.unhealthy_threshold().value());
  if (h.has_healthy_threshold()) hc.healthy_threshold = std::max(1u, h.healthy_threshold().value());
  out.health_check = hc;
}

}  // namespace

std::optional<config::Cluster> translate_cluster(const Cluster& c, std::string* eds_name,
                                                 std::vector<std::string>& errors) {
  Report r(fmt::format("Cluster '{}'", c.name()), errors);
  config::Cluster out;
  out.name = c.name();
  if (out.name.empty()) r.error("name is empty");
  if (c.has_cluster_type()) r.error("cluster_type (a custom cluster type) is not supported");
  bool dns = false;
  switch (c.type()) {
    case Cluster::STATIC: out.type = config::ClusterType::static_; break;
    case Cluster::STRICT_DNS: out.type = config::ClusterType::strict_dns; dns = true; break;
    case Cluster::LOGICAL_DNS: out.type = config::ClusterType::logical_dns; dns = true; break;
    case Cluster::EDS: {
      out.type = config::ClusterType::static_;  // endpoints from the ClusterLoadAssignment
      const auto& eds = c.eds_cluster_config();
      const auto& source = eds.eds_config();
      if (eds.has_eds_config() && !source.has_ads() && !source.has_self())
        r.error("eds_cluster_config.eds_config: only 'ads' (or 'self') is supported: endpoints come on the ADS stream");
      if (eds_name) *eds_name = eds.service_name().empty() ? c.name() : eds.service_name();
      break;
    }
    default: r.error("type {}: only STATIC, STRICT_DNS, LOGICAL_DNS and EDS are supported",
                     Cluster::DiscoveryType_Name(c.type()));
  }
  switch (c.lb_policy()) {
    case Cluster::ROUND_ROBIN: out.lb_policy = config::LbPolicy::round_robin; break;
    case Cluster::LEAST_REQUEST: out.lb_policy = config::LbPolicy::least_request; break;
    case Cluster::RANDOM: out.lb_policy = config::LbPolicy::random; break;
    default:
      r.error("lb_policy {}: only ROUND_ROBIN, LEAST_REQUEST and RANDOM are supported",
              Cluster::LbPolicy_Name(c.lb_policy()));
  }
  if (c.has_load_balancing_policy()) r.error("load_balancing_policy is not supported (use lb_policy)");
  if (c.has_connect_timeout()) positive(r, c.connect_timeout(), "connect_timeout", out.connect_timeout);
  if (c.type() != Cluster::EDS && c.has_load_assignment()) {
    if (auto endpoints = translate_endpoints(c.load_assignment(), dns, errors)) out.endpoints = std::move(*endpoints);
  }
  if (dns) {
    if (c.has_dns_refresh_rate()) positive(r, c.dns_refresh_rate(), "dns_refresh_rate", out.dns.refresh_rate);
    out.dns.respect_ttl = c.respect_dns_ttl();
    switch (c.dns_lookup_family()) {
      case Cluster::AUTO: out.dns.lookup_family = config::DnsLookupFamily::auto_; break;
      case Cluster::V4_ONLY: out.dns.lookup_family = config::DnsLookupFamily::v4_only; break;
      case Cluster::V6_ONLY: out.dns.lookup_family = config::DnsLookupFamily::v6_only; break;
      case Cluster::V4_PREFERRED: out.dns.lookup_family = config::DnsLookupFamily::v4_preferred; break;
      case Cluster::ALL: out.dns.lookup_family = config::DnsLookupFamily::all; break;
      default: break;
    }
    if (out.type == config::ClusterType::logical_dns && out.endpoints.size() != 1)
      r.error("load_assignment: a LOGICAL_DNS cluster has exactly one endpoint (has {})", out.endpoints.size());
  }
  circuit_breakers(c, out.circuit_breakers);
  outlier_detection(r, c, out);
  health_check(r, c, out);
  protocol(r, c, out);
  if (c.has_transport_socket()) out.tls = upstream_tls(r, c.transport_socket());
  if (!c.transport_socket_matches().empty()) r.error("transport_socket_matches is not supported");
  if (!r.ok()) return std::nullopt;
  return out;
}

std::optional<std::vector<config::ClusterEndpoint>> translate_endpoints(
    const endpoint_v3::ClusterLoadAssignment& cla, bool dns, std::vector<std::string>& errors) {
  Report r(fmt::format("ClusterLoadAssignment '{}'", cla.cluster_name()), errors);
  // The lowest priority with an endpoint that may take traffic.
  auto usable = [](const endpoint_v3::LbEndpoint& e) {
    const auto h = e.health_status();
    return h == core_v3::UNKNOWN || h == core_v3::HEALTHY || h == core_v3::DEGRADED;
  };
  std::uint32_t priority = UINT32_MAX;
  for (const auto& locality : cla.endpoints())
    for (const auto& e : locality.lb_endpoints())
      if (usable(e)) priority = std::min(priority, locality.priority());
  std::vector<config::ClusterEndpoint> out;
  for (int li = 0; li < cla.endpoints_size(); ++li) {
    const auto& locality = cla.endpoints(li);
    for (int ei = 0; ei < locality.lb_endpoints_size(); ++ei) {
      const auto& e = locality.lb_endpoints(ei);
      const auto field = fmt::format("endpoints[{}].lb_endpoints[{}]", li, ei);
      if (!e.has_endpoint()) {
        r.error("{}: an endpoint is required (named endpoints are not supported)", field);
        continue;
      }
      const auto& address = e.endpoint().address();
      if (!address.has_socket_address()) {
        r.error("{}.endpoint.address: only socket_address is supported", field);
        continue;
      }
      const auto& sa = address.socket_address();
      if (sa.protocol() != core_v3::SocketAddress::TCP) r.error("{}.endpoint.address.socket_address.protocol: TCP only", field);
      if (!sa.resolver_name().empty()) r.error("{}.endpoint.address.socket_address.resolver_name is not supported", field);
      if (sa.port_specifier_case() != core_v3::SocketAddress::kPortValue || sa.port_value() == 0 ||
          sa.port_value() > 65535) {
        r.error("{}.endpoint.address.socket_address.port_value: 1 to 65535", field);
        continue;
      }
      if (!dns && !is_ip(sa.address())) {
        r.error("{}.endpoint.address.socket_address.address: '{}' is not an IP address", field, sa.address());
        continue;
      }
      if (sa.address().empty()) {
        r.error("{}.endpoint.address.socket_address.address is empty", field);
        continue;
      }
      if (e.has_load_balancing_weight() && e.load_balancing_weight().value() == 0)
        r.error("{}.load_balancing_weight must be at least 1", field);
      if (!usable(e) || locality.priority() != priority) continue;
      config::ClusterEndpoint ce;
      ce.address = core::Address{sa.address(), static_cast<std::uint16_t>(sa.port_value())};
      if (e.has_load_balancing_weight()) ce.weight = std::max(1u, e.load_balancing_weight().value());
      out.push_back(std::move(ce));
    }
  }
  if (!r.ok()) return std::nullopt;
  return out;
}

}  // namespace outrigger::xds
