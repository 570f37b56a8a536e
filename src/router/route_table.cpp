#include "outrigger/router/route_table.hpp"

#include <boost/beast/core/string.hpp>

namespace outrigger::router {

namespace bhttp = boost::beast::http;

std::string_view path_of(std::string_view target) {
  const auto end = target.find_first_of("?#");
  return end == std::string_view::npos ? target : target.substr(0, end);
}

namespace {

std::string_view strip_port(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  const auto colon = host.rfind(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

bool route_matches(const CompiledRoute& r, const http::RequestMessage& req, std::string_view path) {
  const auto& m = r.config->match;
  if (m.path) {
    if (path != *m.path) return false;
  } else if (r.path_regex) {
    if (!std::regex_match(path.begin(), path.end(), *r.path_regex)) return false;
  } else {
    const std::string_view prefix = m.prefix ? std::string_view(*m.prefix) : "/";
    if (path.substr(0, prefix.size()) != prefix) return false;
  }
  if (!m.methods.empty()) {
    const auto method = req.method_string();
    bool any = false;
    for (const auto& x : m.methods) any = any || method == x;
    if (!any) return false;
  }
  if (!m.hosts.empty()) {
    const auto host = req[bhttp::field::host];
    bool any = false;
    for (const auto& h : m.hosts) any = any || host_matches(host, h);
    if (!any) return false;
  }
  return http::all_match(r.headers, req);
}

}  // namespace

bool host_matches(std::string_view host, std::string_view pattern) {
  host = strip_port(host);
  if (pattern.starts_with("*.")) {
    const auto suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() &&
           boost::beast::iequals(host.substr(host.size() - suffix.size()), suffix);
  }
  return boost::beast::iequals(host, pattern);
}

const CompiledRoute* RouteTable::match(const http::RequestMessage& request) const {
  const auto path = path_of(request.target());
  for (const auto& r : routes_)
    if (route_matches(r, request, path)) return &r;
  return nullptr;
}

}  // namespace outrigger::router
