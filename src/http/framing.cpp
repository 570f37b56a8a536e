#include "outrigger/http/framing.hpp"

#include <algorithm>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/url/parse.hpp>

#include "outrigger/core/small_allocator.hpp"

namespace outrigger::http {

namespace bhttp = boost::beast::http;

namespace {

bool tchar(char c) {
  static constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         kSpecials.find(c) != std::string_view::npos;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// The codings of every Transfer-Encoding field line, in order.
Framing check_transfer_coding(const RequestHeader& request) {
  bool chunked_seen = false, other_seen = false;
  for (auto it = request.find(bhttp::field::transfer_encoding);
       it != request.end() && it->name() == bhttp::field::transfer_encoding; ++it) {
    std::string_view list = it->value();
    for (;;) {
      const auto comma = list.find(',');
      const auto coding = trim_ows(list.substr(0, comma));
      if (coding.empty() || chunked_seen) return Framing::bad_request;  // "chunked" must come last, once
      if (boost::beast::iequals(coding, "chunked")) {
        chunked_seen = true;
      } else {
        // A coding with parameters ("gzip;q=1") is still a coding; anything
        // else that is not a token is garbage.
        const auto name = coding.substr(0, coding.find(';'));
        for (char c : name)
          if (!tchar(c)) return Framing::bad_request;
        if (name.empty()) return Framing::bad_request;
        other_seen = true;
      }
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  if (!chunked_seen) return Framing::bad_request;
  return other_seen ? Framing::not_implemented : Framing::ok;
}

bool valid_host(std::string_view host) {
  if (host.empty()) return true;  // allowed when the target has no authority (RFC 9112 §3.2)
  // The common case, a name or an IPv4 address and a port, without a parser.
  bool simple = true;
  for (char c : host)
    simple = simple && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                        c == '-' || c == ':');
  if (simple && host.find(':') == host.rfind(':') && host.front() != ':') {
    const auto colon = host.find(':');
    if (colon == std::string_view::npos) return true;
    const auto port = host.substr(colon + 1);
    return port.size() <= 5 && std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  }
  const auto a = boost::urls::parse_authority(host);
  return a && !a->has_userinfo();
}

// A name that some servers read as a framing header (CGI-style servers turn
// '-' and '_' alike into '_'): Transfer_Encoding, content_length.
bool framing_lookalike(std::string_view name) {
  if (name.size() != 14 && name.size() != 17) return false;
  if (name.find('_') == std::string_view::npos) return false;
  std::string canonical(name);
  for (auto& c : canonical) c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return canonical == "content-length" || canonical == "transfer-encoding";
}

}  // namespace

Framing check_request_framing(const RequestHeader& request) {
  // One pass over the fields; Beast has already told each known name apart.
  std::size_t lengths = 0, codings = 0, hosts = 0;
  std::string_view length, host;
  for (const auto& f : request) {
    switch (f.name()) {
      case bhttp::field::content_length:
        ++lengths;
        length = f.value();
        break;
      case bhttp::field::transfer_encoding: ++codings; break;
      case bhttp::field::host:
        ++hosts;
        host = f.value();
        break;
      case bhttp::field::unknown:
        if (framing_lookalike(f.name_string())) return Framing::bad_request;
        break;
      default: break;
    }
  }
  if (lengths > 1 || (lengths == 1 && !all_digits(length))) return Framing::bad_request;
  if (codings > 0) {
    if (lengths > 0 || request.version() < 11) return Framing::bad_request;
    if (const auto v = check_transfer_coding(request); v != Framing::ok) return v;
  }
  if (hosts > 1 || (hosts == 0 && request.version() >= 11)) return Framing::bad_request;
  if (hosts == 1 && !valid_host(host)) return Framing::bad_request;
  return Framing::ok;
}

bool to_origin_form(RequestHeader& request) {
  const auto target = request.target();
  if (target.empty() || target.front() == '/' || target == "*") return true;
  const auto uri = boost::urls::parse_absolute_uri(target);
  if (!uri || !uri->has_authority() || uri->has_userinfo()) return false;
  const auto scheme = uri->scheme();
  if (!boost::beast::iequals(scheme, "http") && !boost::beast::iequals(scheme, "https")) return false;
  const auto authority = uri->encoded_authority();
  if (const auto host = request.find(bhttp::field::host);
      host != request.end() && !boost::beast::iequals(host->value(), authority))
    return false;
  std::string origin(uri->encoded_path().empty() ? std::string_view("/") : std::string_view(uri->encoded_path()));
  if (uri->has_query()) {
    origin += '?';
    origin += uri->encoded_query();
  }
  request.set(bhttp::field::host, authority);
  request.target(origin);
  return true;
}

bool chunked_prefix_ok(std::string_view held) {
  bhttp::request_parser<bhttp::buffer_body, core::SmallAllocator<char>> p;
  p.body_limit(boost::none);
  boost::system::error_code ec;
  static constexpr std::string_view kHeader = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  p.put(boost::asio::buffer(kHeader.data(), kHeader.size()), ec);
  char scratch[4096];
  while (!held.empty() && !p.is_done()) {
    p.get().body().data = scratch;
    p.get().body().size = sizeof scratch;
    const auto n = p.put(boost::asio::buffer(held.data(), held.size()), ec);
    held.remove_prefix(n);
    if (ec == bhttp::error::need_buffer) continue;
    if (ec == bhttp::error::need_more) return true;
    if (ec) return false;
    if (n == 0) return true;
  }
  return true;
}

}  // namespace outrigger::http
