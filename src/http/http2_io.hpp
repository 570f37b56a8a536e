// What the HTTP/2 server (http2_session.cpp, http2_stream.cpp) and client
// (http2_client.cpp) codecs share: moving bytes between nghttp2 and a
// buffer, and building header fields for it. Private to src/http.
#pragma once

#include <nghttp2/nghttp2.h>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/container/small_vector.hpp>
#include <array>
#include <cctype>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace outrigger::http::h2 {

// Appends what nghttp2 has to send to `out`, until it has nothing more or
// `out` holds `batch` bytes. Returns 0, or nghttp2's (fatal) error.
inline int collect_output(nghttp2_session* session, std::string& out, std::size_t batch) {
  for (;;) {
    const std::uint8_t* data = nullptr;
    const auto n = nghttp2_session_mem_send(session, &data);
    if (n < 0) return static_cast<int>(n);
    if (n == 0) return 0;
    out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    if (out.size() >= batch) return 0;
  }
}

// Hands nghttp2 every byte `in` holds and empties it. Returns 0, or
// nghttp2's (fatal) error.
template <class Buffer>
int feed(nghttp2_session* session, Buffer& in) {
  const auto data = in.data();
  const auto rv = nghttp2_session_mem_recv(session, static_cast<const std::uint8_t*>(data.data()), data.size());
  in.consume(in.size());
  return rv < 0 ? static_cast<int>(rv) : 0;
}

// Moves up to `size` bytes of a stream's received body (`in` from `offset`)
// into buf, and empties `in` once all of it is taken; the count.
inline std::size_t take(std::string& in, std::size_t& offset, char* buf, std::size_t size) {
  const auto n = std::min(size, in.size() - offset);
  std::memcpy(buf, in.data() + offset, n);
  offset += n;
  if (offset == in.size()) {
    in.clear();
    offset = 0;
  }
  return n;
}

// A header field for nghttp2, which copies it on submit.
inline nghttp2_nv field(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NONE};
}

// HTTP/2 field names are lower case (RFC 9113 §8.2).
inline std::string lower(std::string_view name) {
  std::string out(name);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The lower-case name of a field Beast knows, made once; empty for unknown.
inline std::string_view known_lower(boost::beast::http::field f) {
  using boost::beast::http::field;
  static const auto table = [] {
    std::array<std::string, static_cast<std::size_t>(field::xref) + 1> t;  // xref: Beast's last field
    for (std::size_t i = 1; i < t.size(); ++i) t[i] = lower(boost::beast::http::to_string(static_cast<field>(i)));
    return t;
  }();
  const auto i = static_cast<std::size_t>(f);
  return i < table.size() ? std::string_view(table[i]) : std::string_view();
}

// The header fields of one submit, on the stack for a usual header: names
// Beast knows come from known_lower(), others are lower-cased into `arena`,
// reserved up front so that the views into it stay valid.
struct FieldList {
  boost::container::small_vector<nghttp2_nv, 24> nva;
  std::string arena;
  template <class Fields>
  void reserve_for(const Fields& fields) {
    std::size_t unknown = 0;
    for (const auto& f : fields)
      if (f.name() == boost::beast::http::field::unknown) unknown += f.name_string().size();
    arena.reserve(unknown);
  }
  void add(std::string_view name, std::string_view value) { nva.push_back(field(name, value)); }
  template <class Field>
  void add_lowered(const Field& f) {
    auto name = known_lower(f.name());
    if (name.empty()) {
      const auto at = arena.size();
      for (char c : f.name_string()) arena += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      name = std::string_view(arena).substr(at);
    }
    add(name, f.value());
  }
};

// Fields HTTP/2 forbids (RFC 9113 §8.2.2); TE is allowed as "trailers" only.
inline bool is_connection_specific(std::string_view name) {
  for (std::string_view f : {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"})
    if (boost::beast::iequals(name, f)) return true;
  return false;
}

}  // namespace outrigger::http::h2
