#include "outrigger/http/http1_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/error.hpp>

#include "outrigger/http/body_parse.hpp"
#include "outrigger/http/write_serialized.hpp"

namespace outrigger::http {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {
// Upstream response headers may be large (cookies); Beast's default is 8 KiB.
constexpr std::uint32_t kMaxResponseHeaderBytes = 96 * 1024;
constexpr std::size_t kReadChunk = 16 * 1024;
}  // namespace

Http1Client::Http1Client(const asio::any_io_executor& ex, core::DeadlineQueue& deadlines)
    : stream_(ex), deadline_(deadlines) {}

Http1Client::~Http1Client() = default;

void Http1Client::begin(bool reused) {
  reused_ = reused;
  head_ = got_response_ = abandoned_ = false;
  trailers_.clear();
  serializer_.reset();
  parser_.reset();
}

bool Http1Client::end() {
  deadline_.disarm();
  const bool clean = !abandoned_ && serializer_ && serializer_->is_done() && parser_ && parser_->is_done() &&
                     parser_->keep_alive() && !parser_->need_eof() && parser_->get().result_int() != 101 &&
                     buffer_.size() == 0;
  serializer_.reset();
  parser_.reset();
  return clean;
}

void Http1Client::set_deadline(std::chrono::steady_clock::time_point at) { deadline_.arm(at, &stream_.socket()); }

UpstreamError Http1Client::failure() const {
  if (deadline_.expired()) return UpstreamError::timeout;
  // A connection from the idle list that fails before any byte of a response
  // came back was closed by the upstream while it idled: it took nothing.
  if (reused_ && !got_response_) return UpstreamError::not_processed;
  return UpstreamError::reset;
}

awaitable<UpstreamError> Http1Client::write_request(RequestMessage& req, const Fields* trailers) {
  if (!serializer_) {
    head_ = req.method() == bhttp::verb::head;
    // TE is a connection option in HTTP/1.1 (RFC 9110 §10.1.4).
    if (req.find(bhttp::field::te) != req.end() && req.find(bhttp::field::connection) == req.end())
      req.set(bhttp::field::connection, "te");
    chunked_request_ = req.chunked();
    serializer_.emplace(req);
  }
  if (trailers && !req.body().more && chunked_request_) {
    req.body().more = true;  // the last piece as a chunk, then the last chunk with the trailers
    auto ec = co_await write_serialized(stream_, *serializer_);
    req.body().more = false;
    if (!ec) ec = co_await write_last_chunk(stream_, *trailers);
    co_return ec ? failure() : UpstreamError::none;
  }
  const auto ec = co_await write_serialized(stream_, *serializer_);
  co_return ec ? failure() : UpstreamError::none;
}

const Fields* Http1Client::response_trailers() const {
  return trailers_.begin() != trailers_.end() ? &trailers_ : nullptr;
}

awaitable<UpstreamError> Http1Client::read_response_header() {
  for (;;) {
    parser_.emplace();
    trailer_mark_ = {&*parser_};
    parser_->on_chunk_header(trailer_mark_);
    parser_->body_limit(boost::none);
    parser_->header_limit(kMaxResponseHeaderBytes);
    parser_->skip(head_);
    if (buffer_.size() > 0) got_response_ = true;
    for (;;) {
      if (buffer_.size() > 0) {
        error_code ec;
        const auto n = parser_->put(buffer_.data(), ec);
        buffer_.consume(n);
        if (parser_->is_header_done()) break;
        if (ec && ec != bhttp::error::need_more) co_return UpstreamError::protocol;
      }
      // Read in place (not a helper coroutine: one frame fewer per read).
      auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(kReadChunk), use_tuple);
      buffer_.commit(n);
      if (n > 0) got_response_ = true;
      if (ec) co_return failure();
    }
    const int status = parser_->get().result_int();
    if (status < 100 || status >= 200 || status == 101) {
      trailers_.clear();
      co_return UpstreamError::none;
    }
  }
}

awaitable<UpstreamBodyRead> Http1Client::read_response_body(char* buf, std::size_t size) {
  auto& p = *parser_;
  while (!p.is_done()) {
    const auto parsed = parse_body(p, buffer_, buf, size);
    if (parsed.kind == ParsedBody::malformed) co_return UpstreamBodyRead{UpstreamError::protocol};
    if (parsed.kind == ParsedBody::piece) {
      if (p.is_done() && p.chunked()) take_trailers(p.get().base(), trailer_mark_.header_fields, trailers_);
      co_return UpstreamBodyRead{UpstreamError::none, parsed.bytes, p.is_done()};
    }
    auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(kReadChunk), use_tuple);
    buffer_.commit(n);
    if (ec == asio::error::eof && p.need_eof()) {
      error_code ignored;
      p.put_eof(ignored);
      break;
    }
    if (ec) co_return UpstreamBodyRead{deadline_.expired() ? UpstreamError::timeout : UpstreamError::reset};
  }
  co_return UpstreamBodyRead{UpstreamError::none, 0, true};
}

void Http1Client::abandon() {
  abandoned_ = true;
  error_code ec;
  stream_.socket().close(ec);
}

}  // namespace outrigger::http
