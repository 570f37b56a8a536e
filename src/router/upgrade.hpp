// An HTTP/1.1 upgrade through the router (WebSocket and the like): the
// request goes to an endpoint on a connection of its own, and once the
// endpoint answers 101 both connections become one tunnel (net/tunnel.hpp)
// until either side closes or tunnel_idle_timeout passes. A client on
// HTTP/2 asks with an extended CONNECT (RFC 8441), which the HTTP/2 codec
// turned into the same upgrade request; it gets 200 for the 101. Any other
// answer is relayed as a plain response. No retries: a connect failure
// tries the next endpoint, nothing else is sent twice.
#pragma once

#include "outrigger/router/router.hpp"

namespace outrigger::router {

// Until the 101, the exchange has `deadline` (the route timeout).
http::awaitable<void> forward_upgrade(http::Exchange& ex, Destination& to, std::chrono::steady_clock::time_point deadline);

}  // namespace outrigger::router
