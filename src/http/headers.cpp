#include "outrigger/http/headers.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/field.hpp>
#include <array>
#include <charconv>

#include "outrigger/config/config.hpp"

namespace outrigger::http {

namespace http = boost::beast::http;

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

template <class F>
void for_each_token(std::string_view list, F&& f) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    const auto token = trim(list.substr(0, comma));
    if (!token.empty()) f(token);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace

bool has_token(std::string_view list, std::string_view token) {
  bool found = false;
  for_each_token(list, [&](std::string_view t) { found = found || boost::beast::iequals(t, token); });
  return found;
}

void strip_hop_by_hop(Fields& f) {
  // One pass, by the field names Beast already resolved: most messages carry
  // none of these, or only Connection: keep-alive.
  std::string named;  // the headers a Connection header names (rare), comma-separated
  for (auto it = f.begin(); it != f.end();) {
    switch (it->name()) {
      case http::field::connection:
        for_each_token(it->value(), [&](std::string_view name) {
          if (boost::beast::iequals(name, "close") || boost::beast::iequals(name, "keep-alive")) return;
          named.append(name).push_back(',');
        });
        [[fallthrough]];
      case http::field::keep_alive:
      case http::field::proxy_connection:
      case http::field::te:
      case http::field::trailer:
      case http::field::transfer_encoding:
      case http::field::upgrade:
        it = f.erase(it);
        break;
      default:
        ++it;
    }
  }
  for_each_token(named, [&](std::string_view name) { f.erase(name); });
}

bool accepts_trailers(const Fields& f) {
  const auto te = f.find(http::field::te);
  return te != f.end() && has_token(te->value(), "trailers");
}

std::string upgrade_of(const Fields& f) {
  const auto up = f.find(http::field::upgrade);
  const auto conn = f.find(http::field::connection);
  if (up == f.end() || conn == f.end() || !has_token(conn->value(), "upgrade")) return {};
  // The first protocol offered ("websocket", "h2c"; a version after '/' kept).
  std::string out;
  for (char c : up->value()) {
    if (c == ',' || c == ' ' || c == '\t') {
      if (!out.empty()) break;
      continue;
    }
    out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

namespace {
std::optional<std::uint64_t> parse_uint(std::string_view v) {
  std::uint64_t out = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || end != v.data() + v.size() || v.empty()) return std::nullopt;
  return out;
}
// A percentage, 0 to 100, fractions allowed ("0.5").
std::optional<double> parse_percent(std::string_view v) {
  double out = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out, std::chars_format::fixed);
  if (ec != std::errc() || end != v.data() + v.size() || v.empty() || !(out >= 0 && out <= 100)) return std::nullopt;
  return out;
}
}  // namespace

ControlHeaders take_control_headers(Fields& f, bool trusted) {
  ControlHeaders out;
  constexpr std::string_view kPrefix = "x-outrigger-";
  for (auto it = f.begin(); it != f.end();) {
    const auto name = it->name_string();
    if (name.size() <= kPrefix.size() || !boost::beast::iequals(name.substr(0, kPrefix.size()), kPrefix)) {
      ++it;
      continue;
    }
    const auto rest = name.substr(kPrefix.size());
    const auto value = it->value();
    if (boost::beast::iequals(rest, "retry-on")) {
      if (trusted) {
        for_each_token(value, [&](std::string_view token) {
          out.retry_on |= config::retry_on_bit(token);
        });
      }
    } else if (boost::beast::iequals(rest, "max-retries")) {
      if (auto v = parse_uint(value); trusted && v && *v <= 10) out.max_retries = static_cast<std::uint32_t>(*v);
    } else if (boost::beast::iequals(rest, "upstream-rq-timeout-ms")) {
      if (auto v = parse_uint(value); trusted && v && *v <= 24ull * 3600 * 1000)
        out.timeout = std::chrono::milliseconds(*v);
    } else if (boost::beast::iequals(rest, "fault-delay-request")) {
      if (auto v = parse_uint(value); trusted && v && *v <= 24ull * 3600 * 1000)
        out.fault_delay = std::chrono::milliseconds(*v);
    } else if (boost::beast::iequals(rest, "fault-delay-request-percentage")) {
      if (auto v = parse_percent(value); trusted && v) out.fault_delay_percent = *v;
    } else if (boost::beast::iequals(rest, "fault-abort-request")) {
      if (auto v = parse_uint(value); trusted && v && *v >= 200 && *v <= 599) out.fault_abort_status = static_cast<int>(*v);
    } else if (boost::beast::iequals(rest, "fault-abort-grpc-request")) {
      if (auto v = parse_uint(value); trusted && v && *v <= 16) out.fault_abort_grpc_status = static_cast<int>(*v);
    } else if (boost::beast::iequals(rest, "fault-abort-request-percentage")) {
      if (auto v = parse_percent(value); trusted && v) out.fault_abort_percent = *v;
    } else if (trusted) {
      ++it;
      continue;
    }
    it = f.erase(it);
  }
  return out;
}

void add_forwarding_headers(Fields& f, std::string_view client_ip, std::string_view proto, bool trusted,
                            RequestIdGenerator& ids) {
  auto xff = f.find("x-forwarded-for");
  if (xff == f.end()) {
    f.insert("x-forwarded-for", client_ip);
  } else {
    std::string joined;
    joined.reserve(xff->value().size() + 2 + client_ip.size());
    joined.append(xff->value()).append(", ").append(client_ip);
    f.set("x-forwarded-for", joined);
  }
  // What the client's own connection was; a client's claim only from a
  // listener that trusts its clients (one proxy in front of another).
  if (auto xfp = f.find("x-forwarded-proto"); xfp == f.end()) {
    f.insert("x-forwarded-proto", proto);
  } else if (!trusted) {
    f.set("x-forwarded-proto", proto);
  }
  if (f.find("x-request-id") == f.end()) {
    char id[36];
    ids.next(id);
    f.insert("x-request-id", std::string_view(id, sizeof id));
  }
}

void RequestIdGenerator::next(char* out) {
  // Two hex digits per byte from a table: 16 bytes, 4 dashes.
  static constexpr auto kHex = [] {
    std::array<char, 512> t{};
    constexpr char digits[] = "0123456789abcdef";
    for (int i = 0; i < 256; ++i) {
      t[2 * i] = digits[i >> 4];
      t[2 * i + 1] = digits[i & 15];
    }
    return t;
  }();
  std::uint64_t hi = random_.next(), lo = random_.next();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  int pos = 0;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[pos++] = '-';
    const std::uint64_t word = i < 8 ? hi : lo;
    const auto byte = static_cast<unsigned>((word >> (56 - 8 * (i % 8))) & 0xff);
    out[pos++] = kHex[2 * byte];
    out[pos++] = kHex[2 * byte + 1];
  }
}

}  // namespace outrigger::http
