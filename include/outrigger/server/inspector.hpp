// The first moments of a connection on a listener that takes more than HTTP
// (`protocol: tcp`, `protocol: auto` with a `cluster`, `sni` routes, or
// `original_destination`): where it was going (SO_ORIGINAL_DST), and what
// it speaks (net/detect.hpp: its first bytes, read within detect_timeout).
// The verdict sends it to the HTTP codec (with the bytes read so far) or to
// a TCP tunnel (server/tcp_proxy.hpp), or closes it. Listeners that take
// only HTTP never come here.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <optional>
#include <string>

#include "outrigger/observability/stats.hpp"

namespace outrigger::upstream {
class Cluster;
}

namespace outrigger::server {

class Pipeline;

struct Verdict {
  enum class Next : std::uint8_t { http, tcp, close } next = Next::close;
  std::string preread;  // the client's bytes read while looking; they go on first
  // Where the client meant to go (after an inbound listener's rewrite to
  // the application's address); none when the connection was not redirected.
  std::optional<boost::asio::ip::tcp::endpoint> destination;
  // tcp: the cluster to connect to; null: the destination itself (passthrough).
  const upstream::Cluster* cluster = nullptr;
  observability::TunnelKind kind = observability::TunnelKind::tcp;
  std::string sni;  // TLS passthrough: the server name asked for
  std::string_view refused;  // close: why, for the access log (passthrough_denied, no_cluster); empty: the client left
};

boost::asio::awaitable<Verdict> inspect(boost::asio::ip::tcp::socket& socket, const Pipeline& pipeline);

}  // namespace outrigger::server
