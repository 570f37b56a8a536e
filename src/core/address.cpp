#include "outrigger/core/address.hpp"

#include <arpa/inet.h>

#include <charconv>

namespace outrigger::core {

std::string Address::to_string() const {
  return is_ipv6() ? "[" + host + "]:" + std::to_string(port) : host + ":" + std::to_string(port);
}

namespace {

bool is_hostname(std::string_view h) {
  if (h.empty() || h.size() > 253 || h.front() == '-' || h.front() == '.' || h.back() == '-') return false;
  for (char c : h) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool looks_numeric(std::string_view h) {
  for (char c : h)
    if (!((c >= '0' && c <= '9') || c == '.')) return false;
  return true;
}

}  // namespace

std::optional<Address> parse_address(std::string_view text, bool allow_zero_port, std::string* why) {
  auto fail = [&](const char* reason) -> std::optional<Address> {
    if (why) *why = reason;
    return std::nullopt;
  };
  std::string_view host, port;
  if (text.starts_with('[')) {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return fail("expected [ipv6]:port");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    in6_addr a6{};
    const std::string h(host);
    if (inet_pton(AF_INET6, h.c_str(), &a6) != 1) return fail("invalid IPv6 address");
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail("expected host:port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return fail("IPv6 addresses need brackets: [::1]:80");
    const std::string h(host);
    in_addr a4{};
    if (looks_numeric(host)) {
      if (inet_pton(AF_INET, h.c_str(), &a4) != 1) return fail("invalid IPv4 address");
    } else if (!is_hostname(host)) {
      return fail("invalid host name");
    }
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535)
    return fail("port must be a number from 1 to 65535");
  if (value == 0 && !allow_zero_port) return fail("port must be a number from 1 to 65535");
  return Address{std::string(host), static_cast<std::uint16_t>(value)};
}

}  // namespace outrigger::core
