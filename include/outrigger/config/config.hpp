// The typed configuration: what `outrigger.yaml` says, parsed and validated once.
// Plain structs, const once built; the request path never sees YAML.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "outrigger/core/address.hpp"

namespace YAML {
class Node;
}

namespace outrigger::config {

using Duration = std::chrono::milliseconds;

// Where a value stood in its file, so that later stages (filter factories,
// snapshot building) can name it in their errors too.
struct Mark {
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based
};

struct HeaderMatch {
  std::string name;                  // lower-cased at load
  std::optional<std::string> exact;  // none of exact/prefix/regex: the header must be present
  std::optional<std::string> prefix;
  std::optional<std::string> regex;
  bool invert = false;  // `absent: true` or `invert: true`
};

struct RouteMatch {
  std::optional<std::string> prefix;  // exactly one of prefix/path/regex; default prefix "/"
  std::optional<std::string> path;    // exact path (query string excluded)
  std::optional<std::string> regex;   // ECMAScript, whole path must match
  std::vector<std::string> hosts;     // empty: any; "api.example.com" or "*.example.com"; port ignored
  std::vector<std::string> methods;   // empty: any; upper case
  std::vector<HeaderMatch> headers;   // all must match
};

struct HeaderValue {
  std::string name;
  std::string value;
};

struct DirectResponse {
  int status = 200;
  std::string body;
  std::vector<HeaderValue> headers;
};

// Which failures a retry policy retries (Envoy's names).
enum RetryOn : unsigned {
  retry_5xx = 1u << 0,                     // "5xx": any 5xx, resets and connect failures too
  retry_gateway_error = 1u << 1,           // "gateway-error": 502, 503, 504
  retry_reset = 1u << 2,                   // "reset": the upstream closed or reset without a response
  retry_connect_failure = 1u << 3,         // "connect-failure"
  retry_retriable_status_codes = 1u << 4,  // "retriable-status-codes": the listed codes
  // gRPC statuses (a gRPC request's grpc-status, in the response header or its trailers)
  retry_grpc_cancelled = 1u << 5,           // "cancelled": 1
  retry_grpc_deadline_exceeded = 1u << 6,   // "deadline-exceeded": 4
  retry_grpc_resource_exhausted = 1u << 7,  // "resource-exhausted": 8
  retry_grpc_internal = 1u << 8,            // "internal": 13
  retry_grpc_unavailable = 1u << 9,         // "unavailable": 14
};
inline constexpr unsigned kRetryOnGrpc = retry_grpc_cancelled | retry_grpc_deadline_exceeded |
                                         retry_grpc_resource_exhausted | retry_grpc_internal | retry_grpc_unavailable;

// The RetryOn bit for an Envoy retry_on name ("5xx", "gateway-error", ...), or 0.
unsigned retry_on_bit(std::string_view name);
inline constexpr std::string_view kRetryOnNames =
    "5xx, gateway-error, reset, connect-failure, retriable-status-codes, cancelled, deadline-exceeded, "
    "resource-exhausted, internal, unavailable";

struct RetryPolicy {
  unsigned retry_on = 0;  // RetryOn bits
  std::vector<int> retriable_status_codes;
  std::uint32_t num_retries = 1;
  Duration per_try_timeout{0};  // 0: only the route timeout
  Duration backoff_base{25};
  Duration backoff_max{250};
  std::vector<std::string> retriable_methods{"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};  // gRPC: any
  // gRPC: response bytes held back from the client while the status (in the
  // trailers) may still ask for a retry
  std::size_t grpc_response_buffer_limit = 64 * 1024;
};

// Where a route sends requests while its cluster's breaker is open.
struct Fallback {
  std::string cluster;                      // another cluster, or
  std::optional<DirectResponse> response;   // a static response
};

struct WeightedCluster {
  std::string cluster;
  std::uint32_t weight = 1;
};

// An HTTP filter entry; its own keys are parsed by the filter's factory (http
// module) when the snapshot is built, so the config module need not know them.
struct FilterSpec {
  std::string type;
  std::shared_ptr<const YAML::Node> node;  // the whole mapping, with marks
  Mark mark;
};

struct Route {
  std::string name;  // default: "<listener>/<index>"
  RouteMatch match;
  std::string cluster;                             // exactly one of cluster / weighted_clusters / direct_response
  std::vector<WeightedCluster> weighted_clusters;  // traffic split by weight
  std::optional<DirectResponse> direct_response;
  Duration timeout{std::chrono::seconds(15)};    // whole exchange, retries included; 0 disables
  std::optional<RetryPolicy> retry;
  std::size_t retry_buffer_limit = 64 * 1024;    // larger request bodies are never retried
  std::optional<Fallback> fallback;
  std::vector<HeaderValue> request_headers_to_add;
  std::vector<std::string> request_headers_to_remove;  // lower-cased
  // HTTP/1.1 upgrades (the Upgrade header's protocol, lower case) forwarded
  // as a tunnel after 101; others are refused with 403.
  std::vector<std::string> upgrade{"websocket"};
  // `per_filter_config`, by filter type: settings that replace the listener's
  // for the filters of that type (parsed by their factories, for the types
  // that take them: fault), and the filters this route skips
  // (`disabled: true`), by index in the listener's filters (empty: none).
  std::vector<FilterSpec> per_filter_config;
  std::vector<bool> disabled_filters;
  Mark mark;
};

enum class Direction { inbound, outbound };

// A `tls:` block: on a listener it terminates TLS from clients, on a cluster
// it originates TLS to the endpoints. Files are PEM; they are watched and
// reloaded when they change (see docs/security.md).
struct Tls {
  enum class Mode { strict, permissive };
  std::string cert, key;  // a listener's serving certificate (required); a cluster's client certificate (optional)
  std::string ca;         // listener: present => clients must present a certificate it signed (mTLS);
                          // cluster: the CA that signs the endpoints' certificates
  Mode mode = Mode::strict;                   // listener: permissive serves plain and TLS on one port
  std::string min_version = "1.2";            // "1.2" or "1.3"
  std::string sni;                            // cluster: the server name sent
  std::vector<std::string> verify_identity;   // identities the peer must have ('*' matches any run of characters)
  Mark mark;
  bool operator==(const Tls& o) const {
    return cert == o.cert && key == o.key && ca == o.ca && mode == o.mode && min_version == o.min_version &&
           sni == o.sni && verify_identity == o.verify_identity;
  }
};

// HTTP/2 toward one kind of peer (RFC 9113 §6.5.2): a listener's toward its
// clients, a cluster's toward its endpoints. The defaults are HAProxy's and
// Envoy's edge guidance: 100 streams, the RFC's 64 KiB stream window, a 1 MiB
// connection window.
struct Http2 {
  std::uint32_t max_concurrent_streams = 100;
  std::uint32_t initial_stream_window_size = 65535;
  std::uint32_t initial_connection_window_size = 1 << 20;
  std::uint32_t max_header_list_size = 0;  // 0: the listener's max_request_headers_bytes (a cluster: 96 KiB)
  Duration ping_interval{0};               // cluster: a PING when a connection was idle this long; 0: none
  Duration ping_timeout{std::chrono::seconds(10)};
  bool operator==(const Http2&) const = default;
};

// What HTTP a listener accepts, or a cluster speaks to its endpoints. `auto`:
// a listener takes HTTP/1.1 and HTTP/2 (by ALPN over TLS, by the connection
// preface in cleartext); a cluster asks for h2 by ALPN over TLS and speaks
// HTTP/1.1 otherwise.
// `tcp` (listeners only): no HTTP at all, bytes both ways to the listener's
// cluster (or the connection's original destination).
enum class Protocol { auto_detect, http1, http2, tcp };

// A listener's TLS passthrough: connections whose ClientHello names one of
// `names` (exact, or "*.example.com") go to `cluster`, bytes untouched.
struct SniRoute {
  std::vector<std::string> names;  // lower case
  std::string cluster;
  Mark mark;
};

// What an original-destination listener does with a connection whose
// destination is in no cluster: connect to it itself, or refuse it.
enum class Passthrough { allow, deny };

// The ports whose clients Linkerd's default config treats as opaque (SMTP,
// submission, MySQL, Galera, PostgreSQL, Redis, Elasticsearch, memcached).
inline const std::vector<std::uint16_t> kDefaultOpaquePorts{25, 587, 3306, 4444, 5432, 6379, 9300, 11211};

// What a listener does with the x-forwarded-client-cert header (Envoy's options).
enum class ForwardClientCert { sanitize, forward_only, append_forward, sanitize_set };

// What a listener does with a request path that holds an encoded '/' or '\'
// (%2F, %5C; Envoy's path_with_escaped_slashes_action). keep: leave them
// encoded, as data inside a segment (routes see them as sent; an upstream that
// decodes before it splits sees other segments, so rbac and jwt_authn refuse
// such paths); reject: answer 400; unescape: decode them into separators
// before the path is normalised, routed and forwarded.
enum class EscapedSlashes { keep, reject, unescape };

struct Listener {
  std::string name;
  core::Address address;
  Direction direction = Direction::inbound;
  std::vector<FilterSpec> filters;
  std::vector<Route> routes;
  std::size_t max_request_line_bytes = 8 * 1024;
  std::size_t max_request_headers_bytes = 60 * 1024;
  Duration request_headers_timeout{std::chrono::seconds(10)};
  Duration idle_timeout{std::chrono::seconds(60)};
  bool trust_request_headers = false;  // honour x-outrigger-* control headers from clients
  std::size_t max_authorities = 0;     // > 0: count requests per Host, for this many distinct values
  std::uint64_t max_connections = 0;   // its client connections on every worker together; 0: no limit of its own
  std::optional<Tls> tls;
  ForwardClientCert forward_client_cert = ForwardClientCert::sanitize;
  EscapedSlashes path_with_escaped_slashes_action = EscapedSlashes::keep;
  Protocol protocol = Protocol::auto_detect;
  Http2 http2;
  // Beyond HTTP (docs/configuration.md, "Protocol detection and TCP").
  bool original_destination = false;  // route each connection by SO_ORIGINAL_DST
  std::string cluster;                // opaque TCP and TLS not terminated here go to this cluster
  Passthrough passthrough = Passthrough::allow;
  // Inbound original destination: where the application listens; port 0
  // means the original destination's port.
  core::Address application_address{"127.0.0.1", 0};
  Duration detect_timeout{100};  // a client silent this long speaks a server-first protocol: TCP
  std::vector<std::uint16_t> opaque_ports = kDefaultOpaquePorts;  // destination ports that skip detection
  std::vector<SniRoute> sni;
  Duration tunnel_idle_timeout{std::chrono::hours(1)};  // TCP, TLS passthrough and upgraded connections
  Mark mark;
  // Whether connections are looked at before a codec takes them (the
  // listener has somewhere to send what is not HTTP).
  bool detects() const {
    return protocol == Protocol::tcp || original_destination || !cluster.empty() || !sni.empty();
  }
};

struct ConnectionPool {
  // Not below what a load keeps in flight: a connection closed on its way back
  // to a full idle list is opened again by the next request (docs/performance.md,
  // "Overload"). The purge, not this cap, takes back what a burst opened.
  std::size_t max_idle_per_endpoint = 1024;
  Duration idle_timeout{std::chrono::seconds(60)};
  std::uint32_t max_requests_per_connection = 0;  // 0: unlimited
};

enum class LbPolicy { round_robin, least_request, random };

struct ClusterEndpoint {
  core::Address address;
  std::uint32_t weight = 1;
};

// Retries allowed: at most `ratio` of the requests plus a floor, over a
// sliding 10-second window (Linkerd's budget), so retries never become a storm.
struct RetryBudget {
  double ratio = 0.2;
  double min_retries_per_second = 10;
};

// The classic closed -> open -> half-open breaker on the failure rate.
struct Breaker {
  double failure_rate = 0.5;        // open at this share of failures in the window...
  std::uint32_t minimum_requests = 20;  // ...once the window holds this many calls
  Duration window{std::chrono::seconds(10)};
  Duration slow_call_duration{0};   // > 0: calls at least this slow count as failures
  Duration open_duration{std::chrono::seconds(30)};
  std::uint32_t half_open_requests = 5;  // probes; all must succeed to close
};

// Envoy's outlier detection on consecutive errors: an endpoint that keeps
// failing is ejected (gets no traffic) for a while.
struct OutlierDetection {
  std::uint32_t consecutive_5xx = 5;              // any 5xx, or a local failure; 0 disables
  std::uint32_t consecutive_gateway_failure = 5;  // 502/503/504, or a local failure; 0 disables
  Duration interval{std::chrono::seconds(10)};    // the ejection multiplier decays by one per interval
  Duration base_ejection_time{std::chrono::seconds(30)};  // x the multiplier
  Duration max_ejection_time{std::chrono::seconds(300)};
  std::uint32_t max_ejection_percent = 10;        // of the endpoints; at least one may always be ejected
};

// Active HTTP health checks, one GET per endpoint per interval.
struct HealthCheck {
  std::string path;
  std::string host;  // the Host header; default: the cluster name
  Duration interval{std::chrono::seconds(5)};
  Duration timeout{std::chrono::seconds(1)};
  std::uint32_t unhealthy_threshold = 3;
  std::uint32_t healthy_threshold = 2;
  bool operator==(const HealthCheck&) const = default;
};

// Envoy's thresholds: limits per cluster, shared by all workers.
struct CircuitBreakers {
  std::uint32_t max_connections = 1024;
  std::uint32_t max_pending_requests = 1024;
  std::uint32_t max_requests = 1024;
  std::uint32_t max_retries = 1024;  // not Envoy's 3: the retry budget is the storm guard (see configuration.md)
};

// How a cluster finds its endpoints (Envoy's cluster types). `static`: the
// addresses as written (a host name is resolved once, when the config loads).
// `strict_dns`: each host name is resolved again and again, and every address
// it returns is an endpoint. `logical_dns`: one host name, one endpoint at the
// first address it returns; new connections go to the latest one.
enum class ClusterType : std::uint8_t { static_, strict_dns, logical_dns };

// Which addresses a DNS cluster takes from an answer (Envoy's names).
enum class DnsLookupFamily : std::uint8_t { v4_only, v6_only, v4_preferred, auto_, all };

struct Dns {
  Duration refresh_rate{std::chrono::seconds(5)};  // between resolutions of a name
  bool respect_ttl = true;                         // re-resolve when the answer's TTL ends, if sooner
  DnsLookupFamily lookup_family = DnsLookupFamily::v4_preferred;
  std::vector<core::Address> resolvers;            // IP:port; none: the system's (/etc/resolv.conf)
  Duration timeout{std::chrono::seconds(5)};       // a resolution's whole time, retries included
  bool operator==(const Dns&) const = default;
};

struct Cluster {
  std::string name;
  ClusterType type = ClusterType::static_;
  std::vector<ClusterEndpoint> endpoints;
  Dns dns;  // strict_dns and logical_dns
  LbPolicy lb_policy = LbPolicy::round_robin;
  Duration connect_timeout{std::chrono::seconds(1)};
  ConnectionPool connection_pool;
  CircuitBreakers circuit_breakers;
  RetryBudget retry_budget;
  std::optional<Breaker> breaker;
  std::optional<OutlierDetection> outlier_detection;
  std::optional<HealthCheck> health_check;
  std::optional<Tls> tls;
  Protocol protocol = Protocol::http1;
  Http2 http2;
  bool from_xds = false;  // sent by the control plane (docs/xds.md), not the file
  Mark mark;
};

enum class AccessLogFormat { json, text };

struct AccessLog {
  bool enabled = false;
  std::string path = "stdout";  // "stdout", "stderr" or a file path
  AccessLogFormat format = AccessLogFormat::json;
  // Text format with %FIELD% placeholders (Envoy-like); see docs/configuration.md.
  std::string text_format =
      "[%START_TIME%] \"%METHOD% %PATH% %PROTOCOL%\" %RESPONSE_CODE% %ERROR% %BYTES_RECEIVED% "
      "%BYTES_SENT% %DURATION_MS% \"%FORWARDED_FOR%\" \"%USER_AGENT%\" \"%REQUEST_ID%\" "
      "\"%AUTHORITY%\" \"%UPSTREAM_HOST%\" %ROUTE% %CLUSTER%";
};

struct Admin {
  bool enabled = true;
  core::Address address{"127.0.0.1", 9901};
};

// Trace context formats, as read and written.
enum class Propagation : std::uint8_t { b3, b3_single, w3c };

// Zipkin tracing (the `tracing` filter turns it on for a listener).
struct Tracing {
  std::string service_name;
  std::string collector_cluster;
  std::string collector_path = "/api/v2/spans";
  double sample_rate = 1.0;  // for requests that arrive without a sampling decision
  std::vector<Propagation> propagation{Propagation::b3, Propagation::b3_single, Propagation::w3c};
  std::size_t max_queue_spans = 10000;  // all workers together
  Duration flush_interval{std::chrono::seconds(1)};
  std::size_t max_batch_spans = 500;
  Mark mark;
};

// What the proxy admits at most, so that load past its capacity is refused
// at once instead of queueing without bound (docs/operations.md, "Overload
// limits"). The admin listener is never limited. 0: no limit.
struct Overload {
  // Client connections open on every listener of every worker together
  // (Envoy's global_downstream_max_connections, HAProxy's maxconn). The
  // default is the figure Envoy's edge guidance sets: far above a sidecar's
  // normal use, and below a container's descriptor limit.
  std::uint64_t max_downstream_connections = 50000;
  // Requests (HTTP/1.1 exchanges and HTTP/2 streams) in flight on one worker;
  // more are answered 503 (x-outrigger-error: overload). Far above what the
  // clusters' max_requests (1024 each) let through in normal use.
  std::uint32_t max_requests_per_worker = 10000;
  bool operator==(const Overload&) const = default;
};
// A control plane over ADS (docs/xds.md): the `xds:` block.
struct Xds {
  std::string cluster;  // the control plane: a cluster of the file, protocol http2
  std::string node_id, node_cluster;
  std::vector<std::pair<std::string, std::string>> node_metadata;
  bool clusters = true;  // `resources: [clusters]`: CDS, and EDS for its EDS clusters
  Duration initial_fetch_timeout{std::chrono::seconds(15)};
  // What is in force (set on the config the workers get, for /config_dump).
  std::string clusters_version, endpoints_version;
  Mark mark;
};

struct Config {
  std::string file;  // where it was loaded from, for reloads and errors
  Admin admin;
  unsigned workers = 0;  // 0 at load means "number of CPUs"; resolved by the loader
  std::vector<Listener> listeners;
  std::vector<Cluster> clusters;
  AccessLog access_log;
  std::string log_level = "info";  // trace, debug, info, warn, error, critical, off
  Duration drain_timeout{std::chrono::seconds(5)};
  // A sidecar (inbound and outbound listeners) drains its inbound side first
  // and keeps serving the application's outbound calls until none has been
  // open for this long (the application is done or gone), within
  // drain_timeout. 0: both sides drain at once.
  Duration outbound_drain_idle{std::chrono::seconds(1)};
  Duration file_watch_interval{std::chrono::seconds(1)};  // how often certificate and key-set files are checked
  std::uint32_t socket_mark = 0;  // SO_MARK on the proxy's upstream sockets (interception skips them); 0: none
  std::optional<Tracing> tracing;
  Overload overload;
  std::optional<Xds> xds;

  const Cluster* find_cluster(std::string_view name) const;
};

}  // namespace outrigger::config
