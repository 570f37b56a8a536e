// The admin listener, on the main thread: /ready, /live, /metrics
// (also /stats/prometheus), /config_dump, /clusters.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <string>

#include "outrigger/observability/stats.hpp"
#include "outrigger/server/snapshot.hpp"

namespace outrigger::server {

class AdminServer {
 public:
  struct Hooks {
    std::function<bool()> ready;                                   // listeners bound and not draining
    std::function<std::shared_ptr<const Snapshot>()> snapshot;     // the config in force
    std::function<void()> quit;                                    // POST /quitquitquit: drain, then exit 0
    std::function<std::string()> more_metrics;                     // appended to /metrics (the memory sweeps')
  };
  AdminServer(boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& at, observability::Stats& stats,
              Hooks hooks);
  // On a listening socket passed by the process this one replaces (server/upgrade.hpp); owns `fd`.
  AdminServer(boost::asio::io_context& io, int fd, observability::Stats& stats, Hooks hooks);
  std::uint16_t port() const;
  int native_handle() { return acceptor_.native_handle(); }
  void start();
  void stop();

  // The response body and content type for a path (tests call it directly).
  struct Page {
    int status;
    std::string content_type;
    std::string body;
  };
  Page page(std::string_view target) const;

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);

  boost::asio::ip::tcp::acceptor acceptor_;
  observability::Stats& stats_;
  Hooks hooks_;
};

// The running config as JSON (for /config_dump).
std::string config_to_json(const config::Config& config);

}  // namespace outrigger::server
