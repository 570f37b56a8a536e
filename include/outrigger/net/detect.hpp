// Protocol detection: what a client's first bytes say it speaks, without
// consuming or answering them. Pure functions over the bytes read so far;
// the listener (server/inspect.cpp) reads, asks, and reads more while the
// answer is `need_more`, until detect_timeout.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace outrigger::net {

enum class Detected : std::uint8_t {
  need_more,  // a prefix of more than one protocol, or of a TLS ClientHello
  tls,        // a TLS ClientHello (SNI and ALPN in the detection)
  http2,      // the HTTP/2 connection preface (h2c by prior knowledge)
  http1,      // an HTTP/1.x request line
  opaque,     // anything else: TCP
};

struct Detection {
  Detected kind = Detected::need_more;
  std::string sni;   // TLS: the server name asked for, lower case; empty when none
  std::string alpn;  // TLS: the protocols offered, comma-separated ("h2,http/1.1")
};

// At most this many bytes are looked at: a ClientHello longer than this, or
// a request line longer, is taken as opaque.
inline constexpr std::size_t kMaxDetectBytes = 16 * 1024;

Detection detect(std::string_view bytes);

// Whether `name` (lower case) matches `pattern`: equal, or "*.example.com"
// for any name with one label or more before ".example.com".
bool server_name_matches(std::string_view pattern, std::string_view name);

}  // namespace outrigger::net
