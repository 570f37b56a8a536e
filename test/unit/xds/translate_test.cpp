// Envoy's Cluster and ClusterLoadAssignment into Outrigger's config: what is
// taken, and the error (naming the resource and the field) for what is not.
#include <gtest/gtest.h>

#include <google/protobuf/text_format.h>

#include "envoy/extensions/transport_sockets/tls/v3/tls.pb.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb.h"
#include "xds/translate.hpp"

namespace outrigger::xds {
namespace {

using envoy::config::cluster::v3::Cluster;
using envoy::config::endpoint::v3::ClusterLoadAssignment;

template <class M>
M parse(const std::string& text) {
  M m;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &m)) << text;
  return m;
}

bool has(const std::vector<std::string>& errors, const std::string& part) {
  for (const auto& e : errors)
    if (e.find(part) != std::string::npos) return true;
  return false;
}

std::string all(const std::vector<std::string>& errors) {
  std::string out;
  for (const auto& e : errors) out += e + "\n";
  return out;
}

TEST(XdsTranslate, AnEdsClusterWithItsSettings) {
  const auto c = parse<Cluster>(R"pb(
    name: "backend"
    type: EDS
    eds_cluster_config { eds_config { ads {} } service_name: "backend-endpoints" }
    connect_timeout { nanos: 250000000 }
    lb_policy: LEAST_REQUEST
    circuit_breakers {
      thresholds { max_connections { value: 10 } max_pending_requests { value: 20 } max_requests { value: 30 } max_retries { value: 4 } }
      thresholds { priority: HIGH max_connections { value: 99 } }
    }
    outlier_detection { consecutive_5xx { value: 3 } base_ejection_time { seconds: 10 } max_ejection_percent { value: 50 } }
    health_checks { timeout { seconds: 1 } interval { seconds: 2 } unhealthy_threshold { value: 2 } healthy_threshold { value: 1 } http_health_check { path: "/healthz" } }
  )pb");
  std::vector<std::string> errors;
  std::string eds;
  const auto out = translate_cluster(c, &eds, errors);
  ASSERT_TRUE(out) << all(errors);
  EXPECT_EQ(eds, "backend-endpoints");
  EXPECT_EQ(out->name, "backend");
  EXPECT_TRUE(out->endpoints.empty());
  EXPECT_EQ(out->connect_timeout, config::Duration(250));
  EXPECT_EQ(out->lb_policy, config::LbPolicy::least_request);
  EXPECT_EQ(out->circuit_breakers.max_connections, 10u);  // the DEFAULT priority's, not HIGH's
  EXPECT_EQ(out->circuit_breakers.max_pending_requests, 20u);
  EXPECT_EQ(out->circuit_breakers.max_requests, 30u);
  EXPECT_EQ(out->circuit_breakers.max_retries, 4u);
  ASSERT_TRUE(out->outlier_detection);
  EXPECT_EQ(out->outlier_detection->consecutive_5xx, 3u);
  EXPECT_EQ(out->outlier_detection->consecutive_gateway_failure, 0u);  // not enforced unless asked, as in Envoy
  EXPECT_EQ(out->outlier_detection->base_ejection_time, config::Duration(10000));
  EXPECT_EQ(out->outlier_detection->max_ejection_percent, 50u);
  ASSERT_TRUE(out->health_check);
  EXPECT_EQ(out->health_check->path, "/healthz");
  EXPECT_EQ(out->health_check->interval, config::Duration(2000));
  EXPECT_EQ(out->health_check->unhealthy_threshold, 2u);
  EXPECT_EQ(out->protocol, config::Protocol::http1);
}

TEST(XdsTranslate, AnEdsClusterWithoutServiceNameTakesItsOwnName) {
  std::vector<std::string> errors;
  std::string eds;
  ASSERT_TRUE(translate_cluster(parse<Cluster>(R"pb(name: "a" type: EDS eds_cluster_config { eds_config { ads {} } })pb"),
                                &eds, errors));
  EXPECT_EQ(eds, "a");
}

TEST(XdsTranslate, HttpTwoFromTheProtocolOptions) {
  Cluster c = parse<Cluster>(R"pb(name: "grpc" type: EDS eds_cluster_config { eds_config { ads {} } })pb");
  envoy::extensions::upstreams::http::v3::HttpProtocolOptions options;
  options.mutable_explicit_http_config()->mutable_http2_protocol_options();
  (*c.mutable_typed_extension_protocol_options())["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].PackFrom(
      options);
  std::vector<std::string> errors;
  const auto out = translate_cluster(c, nullptr, errors);
  ASSERT_TRUE(out) << all(errors);
  EXPECT_EQ(out->protocol, config::Protocol::http2);
}

TEST(XdsTranslate, UpstreamTlsFromFiles) {
  Cluster c = parse<Cluster>(R"pb(name: "secure" type: EDS eds_cluster_config { eds_config { ads {} } })pb");
  auto ctx = parse<envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext>(R"pb(
    sni: "backend.internal"
    common_tls_context {
      tls_certificates { certificate_chain { filename: "/certs/cert.pem" } private_key { filename: "/certs/key.pem" } }
      validation_context {
        trusted_ca { filename: "/certs/ca.pem" }
        match_typed_subject_alt_names { san_type: URI matcher { exact: "spiffe://mesh/ns/a/sa/b" } }
        match_typed_subject_alt_names { san_type: URI matcher { prefix: "spiffe://mesh/ns/c/" } }
      }
      tls_params { tls_minimum_protocol_version: TLSv1_3 }
    }
  )pb");
  c.mutable_transport_socket()->set_name("envoy.transport_sockets.tls");
  c.mutable_transport_socket()->mutable_typed_config()->PackFrom(ctx);
  std::vector<std::string> errors;
  const auto out = translate_cluster(c, nullptr, errors);
  ASSERT_TRUE(out) << all(errors);
  ASSERT_TRUE(out->tls);
  EXPECT_EQ(out->tls->cert, "/certs/cert.pem");
  EXPECT_EQ(out->tls->key, "/certs/key.pem");
  EXPECT_EQ(out->tls->ca, "/certs/ca.pem");
  EXPECT_EQ(out->tls->sni, "backend.internal");
  EXPECT_EQ(out->tls->min_version, "1.3");
  EXPECT_EQ(out->tls->verify_identity, (std::vector<std::string>{"spiffe://mesh/ns/a/sa/b", "spiffe://mesh/ns/c/*"}));
}

TEST(XdsTranslate, WhatCannotBeHonouredIsNamed) {
  auto errors_of = [](const std::string& text) {
    std::vector<std::string> errors;
    EXPECT_FALSE(translate_cluster(parse<Cluster>(text), nullptr, errors));
    return errors;
  };
  EXPECT_TRUE(has(errors_of(R"pb(name: "a" type: ORIGINAL_DST)pb"),
                  "Cluster 'a': type ORIGINAL_DST: only STATIC, STRICT_DNS, LOGICAL_DNS and EDS are supported"));
  EXPECT_TRUE(has(errors_of(R"pb(name: "a" type: EDS lb_policy: RING_HASH)pb"), "Cluster 'a': lb_policy RING_HASH"));
  EXPECT_TRUE(has(errors_of(R"pb(name: "a" type: EDS eds_cluster_config { eds_config { path_config_source { path: "/x" } } })pb"),
                  "eds_cluster_config.eds_config: only 'ads'"));
  EXPECT_TRUE(has(errors_of(R"pb(name: "a" type: EDS connect_timeout { seconds: 0 })pb"), "connect_timeout must be at least 1ms"));
  EXPECT_TRUE(has(errors_of(R"pb(name: "a" type: EDS health_checks { timeout { seconds: 1 } interval { seconds: 1 } tcp_health_check {} })pb"),
                  "health_checks[0]: only http_health_check"));
  EXPECT_TRUE(has(errors_of(R"pb(name: "" type: EDS)pb"), "name is empty"));
  EXPECT_TRUE(has(errors_of(R"pb(name: "s" type: STATIC load_assignment { cluster_name: "s" endpoints { lb_endpoints { endpoint { address { socket_address { address: "backend.local" port_value: 80 } } } } } })pb"),
                  "ClusterLoadAssignment 's': endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: "
                  "'backend.local' is not an IP address"));
  // Several problems: all of them, not only the first.
  EXPECT_EQ(errors_of(R"pb(name: "a" type: ORIGINAL_DST lb_policy: MAGLEV)pb").size(), 2u);
  // TLS without a CA to verify the upstream with.
  Cluster c = parse<Cluster>(R"pb(name: "t" type: EDS)pb");
  envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext ctx;
  c.mutable_transport_socket()->mutable_typed_config()->PackFrom(ctx);
  std::vector<std::string> errors;
  EXPECT_FALSE(translate_cluster(c, nullptr, errors));
  EXPECT_TRUE(has(errors, "Cluster 't': common_tls_context: a validation_context with trusted_ca is required")) << all(errors);
}

TEST(XdsTranslate, AStaticClusterTakesItsLoadAssignment) {
  std::vector<std::string> errors;
  const auto out = translate_cluster(parse<Cluster>(R"pb(
    name: "s" type: STATIC
    load_assignment { cluster_name: "s" endpoints { lb_endpoints { endpoint { address { socket_address { address: "127.0.0.1" port_value: 8080 } } } load_balancing_weight { value: 3 } } } }
  )pb"), nullptr, errors);
  ASSERT_TRUE(out) << all(errors);
  ASSERT_EQ(out->endpoints.size(), 1u);
  EXPECT_EQ(out->endpoints[0].address.to_string(), "127.0.0.1:8080");
  EXPECT_EQ(out->endpoints[0].weight, 3u);
}

TEST(XdsTranslate, EndpointsThatTakeTrafficAtTheLowestPriorityThatHasAny) {
  const auto cla = parse<ClusterLoadAssignment>(R"pb(
    cluster_name: "backend"
    endpoints {
      priority: 0
      lb_endpoints { endpoint { address { socket_address { address: "10.0.0.1" port_value: 80 } } } health_status: UNHEALTHY }
      lb_endpoints { endpoint { address { socket_address { address: "10.0.0.2" port_value: 80 } } } health_status: DRAINING }
    }
    endpoints {
      priority: 1
      lb_endpoints { endpoint { address { socket_address { address: "10.0.1.1" port_value: 80 } } } health_status: HEALTHY load_balancing_weight { value: 2 } }
      lb_endpoints { endpoint { address { socket_address { address: "2001:db8::1" port_value: 81 } } } }
    }
    endpoints {
      priority: 2
      lb_endpoints { endpoint { address { socket_address { address: "10.0.2.1" port_value: 80 } } } }
    }
  )pb");
  std::vector<std::string> errors;
  const auto out = translate_endpoints(cla, false, errors);
  ASSERT_TRUE(out) << all(errors);
  ASSERT_EQ(out->size(), 2u);  // priority 0 has none that takes traffic: priority 1, not 2
  EXPECT_EQ((*out)[0].address.to_string(), "10.0.1.1:80");
  EXPECT_EQ((*out)[0].weight, 2u);
  EXPECT_EQ((*out)[1].address.to_string(), "[2001:db8::1]:81");
}

TEST(XdsTranslate, BadEndpointsAreNamed) {
  std::vector<std::string> errors;
  EXPECT_FALSE(translate_endpoints(parse<ClusterLoadAssignment>(R"pb(
    cluster_name: "b"
    endpoints { lb_endpoints { endpoint { address { socket_address { address: "10.0.0.1" port_value: 0 } } } } }
    endpoints { lb_endpoints { endpoint { address { pipe { path: "/tmp/s" } } } } }
  )pb"), false, errors));
  EXPECT_TRUE(has(errors, "ClusterLoadAssignment 'b': endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value"))
      << all(errors);
  EXPECT_TRUE(has(errors, "endpoints[1].lb_endpoints[0].endpoint.address: only socket_address")) << all(errors);
  // An empty assignment is valid: no endpoint takes traffic (503 until one does).
  errors.clear();
  const auto none = translate_endpoints(parse<ClusterLoadAssignment>(R"pb(cluster_name: "b")pb"), false, errors);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

}  // namespace
}  // namespace outrigger::xds
