// The xDS client: one ADS stream (envoy.service.discovery.v3.
// AggregatedDiscoveryService, state of the world) to the control plane named
// by the config's `xds:` block, over the proxy's own HTTP/2 client
// (http/http2_client.hpp), on the main thread. It subscribes to clusters
// (CDS) and to the endpoints of the EDS clusters among them, translates
// what comes into the typed config (xds/translate.cpp), hands it to the
// server to be published as a new snapshot, and ACKs or NACKs each response
// by what happened to it. When the stream breaks it keeps what it has and
// tries again with backoff. docs/xds.md says what is supported.
//
// No protobuf or Asio type is in this header: the server includes it.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "outrigger/config/config.hpp"

namespace boost::asio {
class io_context;
}

namespace outrigger::observability {
class Stats;
}

namespace outrigger::upstream {
class Cluster;
}

namespace outrigger::xds {

// What the control plane's accepted resources translate to: the clusters
// (their EDS endpoints filled in), and where each came from.
struct Dynamic {
  std::vector<config::Cluster> clusters;
  std::string clusters_version;   // the CDS version_info in force
  std::string endpoints_version;  // the EDS version_info in force
};

class Client {
 public:
  // Publishes `dynamic` (merged with the file's config) as the new snapshot;
  // returns why it could not (empty: published). Main thread.
  using Apply = std::function<std::vector<std::string>(const Dynamic& dynamic)>;
  // The control plane's cluster in the current snapshot (null: none).
  using Lookup = std::function<std::shared_ptr<const upstream::Cluster>(const std::string& name)>;

  Client(boost::asio::io_context& io, config::Xds settings, Lookup lookup, Apply apply,
         observability::Stats& stats);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void start();
  // Ends the stream; nothing is applied any more. Main thread.
  void stop();
  // What is in force now (config_dump).
  const Dynamic& current() const;
  // The first clusters, and the endpoints of the EDS ones among them, are in force.
  bool initialized() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace outrigger::xds
