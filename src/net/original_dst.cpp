#include "outrigger/net/original_dst.hpp"

#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstring>

namespace outrigger::net {

namespace asio = boost::asio;
using asio::ip::tcp;

std::optional<tcp::endpoint> original_destination(int fd) {
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return std::nullopt;
  sockaddr_storage dst{};
  len = sizeof dst;
  // The socket's family says which table kept the entry: an IPv6 listener
  // also takes IPv4 clients as v4-mapped addresses, whose entry is IPv4's.
  if (local.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&local);
    const bool mapped = IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr);
    if (!mapped && ::getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &len) == 0) {
      const auto* d = reinterpret_cast<const sockaddr_in6*>(&dst);
      asio::ip::address_v6::bytes_type bytes;
      std::memcpy(bytes.data(), &d->sin6_addr, bytes.size());
      return tcp::endpoint(asio::ip::address_v6(bytes, d->sin6_scope_id), ntohs(d->sin6_port));
    }
    if (!mapped) return std::nullopt;
    len = sizeof dst;
  }
  if (::getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &len) != 0) return std::nullopt;
  const auto* d = reinterpret_cast<const sockaddr_in*>(&dst);
  return tcp::endpoint(asio::ip::address_v4(ntohl(d->sin_addr.s_addr)), ntohs(d->sin_port));
}

namespace {
std::atomic<std::uint32_t> g_upstream_mark{0};
}

void set_upstream_mark(std::uint32_t mark) { g_upstream_mark.store(mark, std::memory_order_relaxed); }
std::uint32_t upstream_mark() { return g_upstream_mark.load(std::memory_order_relaxed); }

bool set_mark(int fd, std::uint32_t mark) {
  if (mark == 0) return true;
  return ::setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) == 0;
}

}  // namespace outrigger::net
