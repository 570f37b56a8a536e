// Envoy's xDS v3 resources into Outrigger's typed config: the same structs the
// YAML loader fills (config/config.hpp), checked as strictly. A resource
// Outrigger cannot honour gives an error naming the resource and the field,
// and is NACKed (docs/xds.md says field by field what is supported); a field
// it does not act on and that changes nothing it promises is ignored, as
// Envoy ignores fields it does not know.
//
// Only src/xds includes this header: it brings in the generated protobuf code.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "outrigger/config/config.hpp"

namespace outrigger::xds {

// A Cluster. For type EDS, its endpoints come from the ClusterLoadAssignment
// named in `eds_name` (eds_cluster_config.service_name, or the cluster's
// name), and the returned cluster has none yet. Errors are appended, each a
// sentence naming the field; nullopt when there is any.
std::optional<config::Cluster> translate_cluster(const envoy::config::cluster::v3::Cluster& c, std::string* eds_name,
                                                 std::vector<std::string>& errors);

// The endpoints of a ClusterLoadAssignment that take traffic: those whose
// health is UNKNOWN, HEALTHY or DEGRADED, at the lowest priority that has
// any (Envoy fails over by priority the same way, without its
// overprovisioning spill). `dns`: host names are allowed (the endpoints of
// a LOGICAL_DNS or STRICT_DNS cluster); otherwise addresses must be IPs.
std::optional<std::vector<config::ClusterEndpoint>> translate_endpoints(
    const envoy::config::endpoint::v3::ClusterLoadAssignment& cla, bool dns, std::vector<std::string>& errors);

}  // namespace outrigger::xds
