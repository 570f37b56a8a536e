// `outrigger wait`: returns once the proxy's admin /ready answers 200, or
// fails after a timeout. A classic sidecar's postStart hook runs it, so the
// kubelet starts the application only once the proxy is ready (Istio's
// holdApplicationUntilProxyStarts).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace outrigger::kube {

// One GET of http://127.0.0.1:PORT/PATH; the status, or 0 when nothing answered within `timeout`.
int probe_status(std::uint16_t port, const std::string& path, std::chrono::milliseconds timeout);

// The subcommand: `outrigger wait [--admin-port P] [--timeout T]`; argv[0] is "wait".
int wait_main(int argc, char** argv);

}  // namespace outrigger::kube
