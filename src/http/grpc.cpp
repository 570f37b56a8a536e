#include "outrigger/http/grpc.hpp"

#include <boost/beast/core/string.hpp>
#include <charconv>

namespace outrigger::http {

bool is_grpc(const Fields& request) {
  const auto it = request.find(boost::beast::http::field::content_type);
  if (it == request.end()) return false;
  const auto v = it->value();
  constexpr std::string_view kGrpc = "application/grpc";
  if (v.size() < kGrpc.size() || !boost::beast::iequals(v.substr(0, kGrpc.size()), kGrpc)) return false;
  return v.size() == kGrpc.size() || v[kGrpc.size()] == '+' || v[kGrpc.size()] == ';';
}

std::optional<std::chrono::milliseconds> parse_grpc_timeout(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) return std::nullopt;
  std::uint64_t n = 0;
  const auto digits = value.substr(0, value.size() - 1);
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  using namespace std::chrono;
  auto up = [](std::uint64_t v, std::uint64_t per_ms) { return milliseconds((v + per_ms - 1) / per_ms); };
  switch (value.back()) {
    case 'H': return duration_cast<milliseconds>(hours(n));
    case 'M': return duration_cast<milliseconds>(minutes(n));
    case 'S': return duration_cast<milliseconds>(seconds(n));
    case 'm': return milliseconds(n);
    case 'u': return up(n, 1000);
    case 'n': return up(n, 1'000'000);
    default: return std::nullopt;
  }
}

std::string format_grpc_timeout(std::chrono::milliseconds left) {
  const auto ms = std::max<std::int64_t>(left.count(), 1);
  if (ms < 100'000'000) return std::to_string(ms) + "m";  // at most 8 digits
  return std::to_string((ms + 999) / 1000) + "S";
}

int grpc_status_of(const Fields& fields) {
  const auto it = fields.find("grpc-status");
  if (it == fields.end()) return -1;
  const auto v = it->value();
  int n = -1;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || n < 0 || n >= kGrpcStatusCount) return -1;
  return n;
}

GrpcStatus grpc_status_for_http(int s) {
  switch (s) {
    case 400: return GrpcStatus::internal;
    case 401: return GrpcStatus::unauthenticated;
    case 403: return GrpcStatus::permission_denied;
    case 404: return GrpcStatus::unimplemented;
    case 429:
    case 502:
    case 503: return GrpcStatus::unavailable;
    case 504: return GrpcStatus::deadline_exceeded;
    default: return GrpcStatus::unknown;
  }
}

std::string grpc_message_encode(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  std::string out;
  out.reserve(text.size());
  constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : text) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace outrigger::http
