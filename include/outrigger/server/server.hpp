// The whole proxy in one object: workers with their listeners and pools, the
// admin listener, signal handling, config reload and graceful drain.
// `outrigger run` is `Server(config).start(); return server.run();`; tests use it
// in process the same way.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "outrigger/config/config.hpp"

namespace outrigger::server {

struct UpgradeOptions;  // server/upgrade.hpp

struct ServerOptions {
  bool handle_signals = true;  // SIGTERM/SIGINT drain, SIGHUP reloads config.file
};

class Server {
 public:
  explicit Server(config::Config config, ServerOptions options = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Before start(): restart without dropping connections (server/upgrade.hpp):
  // take the listening sockets of a running proxy, and/or listen for the next binary.
  void set_upgrade(const UpgradeOptions& options);

  // Binds every listener (each worker its own SO_REUSEPORT socket) and the admin
  // listener, then starts the worker threads. Throws std::runtime_error naming
  // the address when a bind fails.
  void start();

  // Runs the main thread (admin, signals, reloads) until the server has drained
  // and stopped. Returns the process exit code (0 after a clean drain).
  int run();

  // Thread-safe. Builds a snapshot from `next` and publishes it to every worker;
  // on failure the old snapshot keeps serving and the errors are returned
  // (`FILE:LINE:COLUMN: message` lines). Counted in outrigger_config_reloads_total.
  std::vector<std::string> reload(config::Config next);

  // Thread-safe. Re-reads the file the config came from and reloads it (SIGHUP).
  std::vector<std::string> reload_from_file();

  // Thread-safe. Graceful shutdown, as SIGTERM: stop accepting,
  // `Connection: close` on responses, wait for in-flight requests up to
  // drain_timeout, then stop. A sidecar (inbound and outbound listeners)
  // drains its inbound side first and its outbound side once the
  // application has stopped calling out (outbound_drain_idle).
  void drain();

  // The ports actually bound (useful when the config asked for port 0).
  std::uint16_t listener_port(std::string_view listener_name) const;
  std::uint16_t admin_port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace outrigger::server
