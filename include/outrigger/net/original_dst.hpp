// Where an intercepted connection was going. iptables' REDIRECT (or DNAT)
// rewrites the destination of the connections it catches; the kernel's
// connection tracking keeps the address the client meant, and
// SO_ORIGINAL_DST (IPv4) / IP6T_SO_ORIGINAL_DST (IPv6) read it back.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <optional>

namespace outrigger::net {

// The original destination of an accepted socket, or nullopt when the
// connection was not redirected (no conntrack entry: a client that
// connected to the listener's own address).
std::optional<boost::asio::ip::tcp::endpoint> original_destination(int fd);

// Marks a socket (SO_MARK) so that interception rules can skip the proxy's
// own connections; needs CAP_NET_ADMIN. 0 does nothing. False on failure.
bool set_mark(int fd, std::uint32_t mark);

// The mark of every upstream socket (the config's socket_mark), set by the
// main thread when a config is applied and read when a connection opens.
void set_upstream_mark(std::uint32_t mark);
std::uint32_t upstream_mark();

}  // namespace outrigger::net
