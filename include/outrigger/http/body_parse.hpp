// Feeds the bytes a codec has read to Beast's parser of a message with a
// buffer_body, so that the body lands in the caller's buffer: shared by the
// server and the client codecs. Included only by them.
#pragma once

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <cstddef>
#include <iterator>

namespace outrigger::http {

struct ParsedBody {
  enum Kind { piece, need_input, malformed } kind;
  std::size_t bytes = 0;  // with piece: the body bytes now in `out` (0 when the body ended without more)
};

// `in` is the codec's read buffer (consumed as parsed); `out` receives body bytes.
template <class Parser, class DynamicBuffer>
ParsedBody parse_body(Parser& p, DynamicBuffer& in, char* out, std::size_t size) {
  auto& body = p.get().body();
  while (in.size() > 0) {
    body.data = out;
    body.size = size;
    boost::system::error_code ec;
    const auto n = p.put(in.data(), ec);
    in.consume(n);
    const std::size_t got = size - body.size;
    body.data = nullptr;
    body.size = 0;
    if (ec == boost::beast::http::error::need_buffer) ec = {};
    if (got > 0 || p.is_done()) return {ParsedBody::piece, got};
    if (ec && ec != boost::beast::http::error::need_more) return {ParsedBody::malformed};
    if (ec || n == 0) break;  // the rest needs more bytes
    // else framing (a chunk header) was consumed and more is at hand
  }
  return {ParsedBody::need_input};
}

// Beast's parser appends a chunked message's trailer fields to its header
// fields (which the proxy edits meanwhile). Set on the parser before it
// reads the header, this notes how many fields there are when the last
// chunk starts: the ones after are the trailers.
template <class Parser>
struct TrailerMark {
  Parser* parser = nullptr;
  std::size_t header_fields = 0;
  void operator()(std::uint64_t size, boost::beast::string_view, boost::system::error_code&);
};

// Moves the fields past the first `header_fields` to `out`.
template <class Fields>
std::size_t count_fields(const Fields& f) {
  return static_cast<std::size_t>(std::distance(f.begin(), f.end()));
}
template <class Parser>
void TrailerMark<Parser>::operator()(std::uint64_t size, boost::beast::string_view, boost::system::error_code&) {
  if (size == 0) header_fields = count_fields(parser->get().base());
}

template <class Header, class Fields>
void take_trailers(Header& header, std::size_t header_fields, Fields& out) {
  auto it = header.begin();
  for (std::size_t i = 0; i < header_fields && it != header.end(); ++i) ++it;
  while (it != header.end()) {
    out.insert(it->name_string(), it->value());
    it = header.erase(it);
  }
}

}  // namespace outrigger::http
