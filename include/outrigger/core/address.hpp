// A host:port pair as written in config: IPv4 `1.2.3.4:80`, IPv6 `[::1]:80`,
// or a host name (`localhost:8080`) that is resolved when the config loads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace outrigger::core {

struct Address {
  std::string host;  // without brackets for IPv6
  std::uint16_t port = 0;

  // `127.0.0.1:80`, `[::1]:80`
  std::string to_string() const;
  bool is_ipv6() const { return host.find(':') != std::string::npos; }
  friend bool operator==(const Address&, const Address&) = default;
};

// Parses `host:port`; a port of 0 is allowed only when allow_zero_port is set
// (listeners may ask the kernel for a free port). Returns nullopt on error and
// sets *why to a short reason.
std::optional<Address> parse_address(std::string_view text, bool allow_zero_port,
                                     std::string* why = nullptr);

}  // namespace outrigger::core
