// DNS for strict_dns and logical_dns clusters (Envoy's cluster types): a
// c-ares resolver driven by the main thread's io_context, and the refresher
// that keeps every DNS cluster's names resolved, each on its own timer, and
// says when an answer changed what the workers should see. The workers never
// resolve: the addresses reach them inside the next config snapshot
// (server/snapshot.cpp reads the refresher's table).
#pragma once

#include <boost/asio/ip/address.hpp>
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

struct DnsAnswer {
  // ok: addresses (at least one); empty: the name exists with no address of
  // the family, or does not exist (NXDOMAIN); failure: no answer (timeout,
  // SERVFAIL, refused, no server).
  enum class Status { ok, empty, failure };
  Status status = Status::failure;
  std::vector<boost::asio::ip::address> addresses;  // in the order of the answer
  std::chrono::seconds ttl{0};                      // the smallest TTL among them; 0 when unknown
  std::string error;                                // what failed, for the log
};

// One c-ares channel: its sockets and timeouts are waited for on `io`, so a
// lookup never blocks the thread. Not thread-safe: use it on io's thread.
class DnsResolver {
 public:
  // `servers`: IP:port of the name servers; none: /etc/resolv.conf's.
  // `timeout`: a lookup's whole time, retries included (about).
  DnsResolver(boost::asio::io_context& io, const std::vector<core::Address>& servers, config::Duration timeout);
  ~DnsResolver();  // pending lookups end without calling back
  DnsResolver(const DnsResolver&) = delete;
  DnsResolver& operator=(const DnsResolver&) = delete;

  void resolve(const std::string& host, config::DnsLookupFamily family, std::function<void(DnsAnswer)> done);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Which addresses a cluster keeps from an answer, by its lookup family.
std::vector<boost::asio::ip::address> filter_family(const std::vector<boost::asio::ip::address>& all,
                                                    config::DnsLookupFamily family);

// The addresses each DNS cluster's names resolved to, by cluster name and
// host name. A name not yet answered is absent; an empty answer is an empty
// list.
using DnsTable = std::map<std::string, std::map<std::string, std::vector<boost::asio::ip::address>>, std::less<>>;

class DnsRefresher {
 public:
  // `changed` runs on io's thread after answers changed the table (once for
  // several answers that come together).
  DnsRefresher(boost::asio::io_context& io, observability::Stats& stats, std::function<void()> changed);
  ~DnsRefresher();
  DnsRefresher(const DnsRefresher&) = delete;
  DnsRefresher& operator=(const DnsRefresher&) = delete;

  // Follows a config: starts resolving the names of its DNS clusters that it
  // does not resolve yet (or whose DNS settings changed), forgets the others.
  void sync(const config::Config& config);
  const DnsTable& table() const { return table_; }
  // Every name has had its first answer (or its first failure): until then
  // the proxy does not call itself ready, as Envoy waits for its clusters.
  bool initialized() const;
  void stop();

 private:
  struct Target;
  void start(Target& t);
  void answered(Target& t, DnsAnswer a);
  DnsResolver& resolver_for(const config::Dns& dns);

  boost::asio::io_context& io_;
  observability::Stats& stats_;
  std::function<void()> changed_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Target>> targets_;  // (cluster, host)
  std::map<std::string, std::unique_ptr<DnsResolver>> resolvers_;                   // by servers and timeout
  DnsTable table_;
  std::uint64_t generations_ = 0;  // numbers every lookup, so that a late answer finds no target
  bool change_posted_ = false;
  bool stopped_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace outrigger::upstream
