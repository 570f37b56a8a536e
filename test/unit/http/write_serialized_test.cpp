// http::write_serialized writes what Beast's serializer would, with few writes.
#include "outrigger/http/write_serialized.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <sstream>

#include "outrigger/http/headers.hpp"

namespace outrigger::http {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using asio::ip::tcp;

// Writes the response with write_serialized, piece by piece, and returns
// what the peer read.
struct Written {
  std::string bytes;
};

// (Coroutine arguments live in the frame; a lambda's captures would not.)
asio::awaitable<void> write_all(tcp::socket& out, bhttp::response<bhttp::buffer_body, Fields>& res,
                                bhttp::response_serializer<bhttp::buffer_body, Fields>& sr,
                                const std::vector<std::string>& pieces) {
  for (std::size_t i = 0; i <= pieces.size(); ++i) {
    const bool last = i == pieces.size();
    res.body().data = last ? nullptr : const_cast<char*>(pieces[i].data());
    res.body().size = last ? 0 : pieces[i].size();
    res.body().more = !last;
    EXPECT_FALSE(co_await write_serialized(out, sr));
  }
  out.shutdown(tcp::socket::shutdown_send);
}

asio::awaitable<void> write_header(tcp::socket& out, bhttp::response_serializer<bhttp::buffer_body, Fields>& sr) {
  EXPECT_FALSE(co_await write_serialized(out, sr, true));
  out.shutdown(tcp::socket::shutdown_send);
}

Written write_pieces(bhttp::response<bhttp::buffer_body, Fields>& res, const std::vector<std::string>& pieces) {
  asio::io_context io;
  tcp::acceptor a(io, {asio::ip::address_v4::loopback(), 0});
  tcp::socket out(io), in(io);
  out.connect(a.local_endpoint());
  in = a.accept();
  Written w;
  bhttp::response_serializer<bhttp::buffer_body, Fields> sr(res);
  asio::co_spawn(io, write_all(out, res, sr, pieces), asio::detached);
  io.run();
  char buf[65536];
  boost::system::error_code ec;
  for (;;) {
    const auto n = in.read_some(asio::buffer(buf), ec);
    if (ec) break;
    w.bytes.append(buf, n);
  }
  return w;
}

// Beast's own rendering of the same response.
std::string beast_text(int status, const std::vector<std::pair<std::string, std::string>>& fields, const std::string& body,
                       bool chunked) {
  bhttp::response<bhttp::string_body> r{static_cast<bhttp::status>(status), 11};
  for (const auto& [k, v] : fields) r.set(k, v);
  r.body() = body;
  if (chunked) {
    r.chunked(true);
  } else {
    r.content_length(body.size());
  }
  std::ostringstream s;
  s << r;
  return s.str();
}

TEST(WriteSerialized, WritesAContentLengthResponseAsBeastWould) {
  bhttp::response<bhttp::buffer_body, Fields> res{bhttp::status::ok, 11};
  res.set("X-Mixed-Case", "kept");
  res.content_length(11);
  const auto w = write_pieces(res, {"hello ", "world"});
  EXPECT_EQ(w.bytes, beast_text(200, {{"X-Mixed-Case", "kept"}}, "hello world", false));
}

TEST(WriteSerialized, WritesChunkedBodiesPieceByPiece) {
  bhttp::response<bhttp::buffer_body, Fields> res{bhttp::status::ok, 11};
  res.chunked(true);
  std::string big(40'000, 'x');  // sent in place, not copied into the scratch block
  const auto w = write_pieces(res, {"abc", big});
  EXPECT_NE(w.bytes.find("\r\n\r\n3\r\nabc\r\n9c40\r\n"), std::string::npos);
  EXPECT_TRUE(w.bytes.ends_with(big + "\r\n0\r\n\r\n"));
}

TEST(WriteSerialized, StopsAfterTheHeaderWhenAskedTo) {
  asio::io_context io;
  tcp::acceptor a(io, {asio::ip::address_v4::loopback(), 0});
  tcp::socket out(io), in(io);
  out.connect(a.local_endpoint());
  in = a.accept();
  bhttp::response<bhttp::buffer_body, Fields> res{bhttp::status::ok, 11};
  res.content_length(100);  // a HEAD response: the length a GET would have had, no body
  res.body().data = nullptr;
  res.body().more = false;
  bhttp::response_serializer<bhttp::buffer_body, Fields> sr(res);
  asio::co_spawn(io, write_header(out, sr), asio::detached);
  io.run();
  char buf[4096];
  boost::system::error_code ec;
  const auto n = in.read_some(asio::buffer(buf), ec);
  EXPECT_EQ(std::string(buf, n), "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
}

}  // namespace
}  // namespace outrigger::http
