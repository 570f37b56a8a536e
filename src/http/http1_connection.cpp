#include "outrigger/http/http1_connection.hpp"

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/serializer.hpp>

#include "outrigger/core/small_allocator.hpp"
#include "outrigger/http/body_parse.hpp"
#include "outrigger/http/framing.hpp"
#include "outrigger/http/http2_session.hpp"
#include "outrigger/http/write_serialized.hpp"
#include "outrigger/tls/context.hpp"

namespace outrigger::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {
constexpr std::size_t kReadChunk = 8 * 1024;
constexpr auto kRefusalWriteTimeout = std::chrono::seconds(5);  // a client that will not read its 4xx
constexpr auto kCloseNotifyTimeout = std::chrono::seconds(1);
// How long a connection closing after its last response waits for the client's FIN.
constexpr auto kLingerCloseTimeout = std::chrono::seconds(2);
}  // namespace

// Everything one request needs, in a block of the thread's small pool
// (core/small_allocator.hpp) and given back between requests, so that an idle
// keep-alive connection does not carry it (the Exchange lives here, not in a
// coroutine frame); the sweep frees what a burst left in the pool.
struct Http1Connection::RequestState {
  using Parser = bhttp::request_parser<bhttp::buffer_body, core::SmallAllocator<char>>;
  RequestState() { parser.on_chunk_header(trailer_mark); }
  Parser parser;
  TrailerMark<Parser> trailer_mark{&parser};
  std::optional<bhttp::response_serializer<bhttp::buffer_body, Fields>> serializer;
  std::optional<Exchange> exchange;
  Fields trailers;
  bool chunked_response = false;
};
// The largest class of the small pool: a bigger state would bypass the pool and its sweep.
static_assert(sizeof(Http1Connection::RequestState) <= 2048);

void Http1Connection::RequestStateRelease::operator()(RequestState* s) const {
  s->~RequestState();
  core::small_pool::deallocate(s, sizeof(RequestState));
}

Http1Connection::Http1Connection(tcp::socket socket, ConnectionHost& host, std::string_view preread,
                                 std::optional<tcp::endpoint> destination)
    : stream_(std::move(socket)), host_(host), route_deadline_(host.deadlines()), destination_(destination) {
  if (!preread.empty()) {
    auto room = buffer_.prepare(preread.size());
    std::memcpy(room.data(), preread.data(), preread.size());
    buffer_.commit(preread.size());
  }
  error_code ec;
  stream_.socket().set_option(tcp::no_delay(true), ec);
  const auto remote = stream_.socket().remote_endpoint(ec);
  if (!ec) client_ip_ = remote.address().to_string();
}

Http1Connection::~Http1Connection() { host_.connection_closed(stream_.tls() != nullptr); }

void Http1Connection::sweep(Clock::time_point now, Clock::duration linger) {
  if (h2_) {
    h2_->sweep(now);
    return;
  }
  error_code ec;
  if (phase_ != Phase::active && !timed_out_ && now >= phase_deadline_) {
    timed_out_ = true;
    stream_.socket().cancel(ec);
    return;
  }
  if (lingering_ && !linger_cancelled_ && now - linger_since_ >= linger) {
    linger_cancelled_ = true;
    stream_.socket().cancel(ec);
  }
}

void Http1Connection::close_if_idle() {
  if (h2_) {
    h2_->drain();  // GOAWAY: the streams in flight finish
    return;
  }
  if (phase_ == Phase::idle) {
    error_code ec;
    stream_.socket().cancel(ec);
  }
}

void Http1Connection::close_now() {
  error_code ec;
  stream_.socket().close(ec);
}

awaitable<error_code> Http1Connection::read_more() {
  if (peer_closed_) co_return error_code(asio::error::eof);
  auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(kReadChunk), use_tuple);
  buffer_.commit(n);
  if (ec == asio::error::eof) peer_closed_ = true;
  co_return ec;
}

awaitable<Http1Connection::ReadResult> Http1Connection::read_header(const CodecSettings& s) {
  auto& p = state_->parser;
  const std::size_t limit = s.max_request_line_bytes + s.max_request_headers_bytes;
  p.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(limit, UINT32_MAX)));
  p.body_limit(boost::none);  // bodies stream; nothing is buffered whole
  for (;;) {
    if (buffer_.size() > 0) {
      error_code ec;
      const auto n = p.put(buffer_.data(), ec);
      buffer_.consume(n);
      if (p.is_header_done()) break;
      if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) co_return ReadResult::too_large;
      if (ec && ec != bhttp::error::need_more) co_return ReadResult::bad_request;
      if (buffer_.size() > limit) co_return ReadResult::too_large;
    }
    const auto ec = co_await read_more();
    if (ec) {
      if (timed_out_) co_return ReadResult::timeout;
      if (buffer_.size() == 0 && !p.got_some()) co_return ReadResult::closed;
      co_return ec == asio::error::eof ? ReadResult::bad_request : ReadResult::closed;
    }
  }
  const auto& req = p.get();
  if (req.target().size() > s.max_request_line_bytes) co_return ReadResult::too_large;
  if (req.version() != 10 && req.version() != 11) co_return ReadResult::bad_request;
  co_return check_header();
}

// What Beast accepted but a proxy must not pass on (http/framing.hpp).
Http1Connection::ReadResult Http1Connection::check_header() {
  auto& p = state_->parser;
  auto& req = p.get();
  switch (check_request_framing(req)) {
    case Framing::ok: break;
    case Framing::bad_request: return ReadResult::bad_request;
    case Framing::not_implemented: return ReadResult::not_implemented;
  }
  if (!to_origin_form(req)) return ReadResult::bad_request;
  // Chunk framing already at hand is checked before anything is forwarded.
  if (p.chunked() && !p.is_done() && buffer_.size() > 0) {
    const auto held = buffer_.data();
    if (!chunked_prefix_ok({static_cast<const char*>(held.data()), held.size()})) return ReadResult::bad_request;
  }
  return ReadResult::ok;
}

awaitable<bool> Http1Connection::start_tls(ExchangeHandler& handler, const DownstreamTls& tls) {
  auto& socket = stream_.socket();
  auto& stats = host_.listener_stats();
  enter(Phase::handshake, Clock::now() + handler.settings().request_headers_timeout);
  if (tls.permissive) {
    // A TLS client speaks first with a handshake record (content type 22).
    auto [ec] = co_await socket.async_wait(tcp::socket::wait_read, use_tuple);
    unsigned char first = 0;
    if (ec || ::recv(socket.native_handle(), &first, 1, MSG_PEEK) != 1) co_return false;
    if (first != 0x16) co_return true;  // plain HTTP
  }
  auto material = tls.context->current();
  auto& ssl = stream_.start_tls(material);
  stats.tls_connections_active.add(1);
  stats.tls_connections_total.inc();
  auto [ec] = co_await ssl.async_handshake(net::TlsStream::server, use_tuple);
  if (ec) {
    stats.count(tls::classify_failure(ssl.native_handle(), ec));
    co_return false;
  }
  stats.tls_handshakes.inc();
  peer_ = std::make_unique<Peer>();
  if (X509* cert = SSL_get0_peer_certificate(ssl.native_handle())) {
    peer_->identity = tls::identity_of(cert);
    if (tls.want_xfcc) peer_->xfcc = tls::xfcc_element(ssl.native_handle(), material->identity);
  }
  co_return true;
}

void Http1Connection::run(std::unique_ptr<Http1Connection> connection) {
  auto& c = *connection;
  asio::co_spawn(c.stream_.get_executor(), c.serve(), [owned = std::move(connection)](std::exception_ptr e) mutable {
    if (e) return;  // the connection goes with its coroutine (never expected: errors are values)
    if (owned->parked_) park(std::move(owned));
  });
}

void Http1Connection::park(std::unique_ptr<Http1Connection> connection) {
  auto& c = *connection;
  c.stream_.socket().async_wait(tcp::socket::wait_read, [owned = std::move(connection)](error_code ec) mutable {
    owned->parked_ = false;
    // Cancelled: the idle timeout, a drain, or the worker's end. The connection closes here.
    if (ec || owned->timed_out_ || owned->host_.draining()) return;
    owned->resumed_ = true;
    run(std::move(owned));
  });
}

awaitable<void> Http1Connection::serve() {
  if (!started_) {
    started_ = true;
    if (auto handler = host_.current_handler(); const auto* tls = handler->tls()) {
      if (!co_await start_tls(*handler, *tls)) {
        error_code ec;
        stream_.socket().close(ec);
        co_return;
      }
      // ALPN chose h2; a listener that speaks only HTTP/2 takes a TLS
      // client that asked for nothing as HTTP/2 too.
      const auto alpn = stream_.tls() ? tls::alpn_selected(stream_.tls()->native_handle()) : "";
      if (alpn == tls::kTcpAlpn) {
        enter(Phase::active);  // the tunnel keeps its own idle time
        co_await handler->tunnel(stream_, peer_ ? std::string_view(peer_->identity) : "",
                                 destination_ ? &*destination_ : nullptr);
        error_code ec;
        stream_.socket().close(ec);
        co_return;
      }
      if (alpn == "h2" || (stream_.tls() && alpn.empty() && !host_.settings().http1)) {
        co_await serve_http2();
        co_return;
      }
    }
  }
  for (;;) {
    if (buffer_.size() == 0) {
      if (host_.draining()) break;
      const auto now = Clock::now();
      enter(Phase::idle, now + host_.settings().idle_timeout);
      // A busy keep-alive client sends its next request soon: read straight
      // into a pooled buffer (no syscall when the last read drained the
      // socket). If the connection lingers, the worker's sweep cancels the
      // read and it parks. TLS may hold decrypted bytes that a wait on the
      // socket would not see: a TLS connection always waits with a read.
      // A parked connection that just woke has bytes waiting: it reads them
      // at once, room to linger or not.
      const bool woken = std::exchange(resumed_, false);
      const bool may_park = !stream_.tls();
      const bool counted = may_park && !woken && host_.begin_linger();
      const bool reads = counted || woken || !may_park;
      error_code ec = asio::error::operation_aborted;
      linger_cancelled_ = !reads;
      if (reads) {
        linger_since_ = now;
        // Inline rather than read_more(): a nested frame would stay allocated while idle.
        std::size_t n = 0;
        lingering_ = counted;
        std::tie(ec, n) = co_await stream_.async_read_some(buffer_.prepare(kReadChunk), use_tuple);
        buffer_.commit(n);
        if (ec == asio::error::eof) peer_closed_ = true;
        lingering_ = false;
        if (counted) host_.end_linger();
      }
      if (ec == asio::error::operation_aborted && linger_cancelled_ && !timed_out_ && !host_.draining()) {
        buffer_.shrink_to_fit();
        parked_ = true;  // the wait goes on without this coroutine (see park)
        co_return;
      }
      if (ec) break;
    }
    if (std::exchange(first_request_, false) && host_.settings().http2_enabled &&
        (!host_.settings().http1 || co_await is_http2_preface())) {
      co_await serve_http2();
      co_return;
    }
    if (!co_await serve_request()) break;
  }
  co_await finish();
}

awaitable<bool> Http1Connection::is_http2_preface() {
  static constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  enter(Phase::reading_header, Clock::now() + host_.settings().request_headers_timeout);
  for (;;) {
    const auto held = buffer_.data();
    const std::string_view bytes(static_cast<const char*>(held.data()), std::min(held.size(), kPreface.size()));
    if (kPreface.substr(0, bytes.size()) != bytes) co_return false;
    if (bytes.size() == kPreface.size()) co_return true;
    if (co_await read_more()) co_return false;  // the request reader sees the failure again
  }
}

awaitable<void> Http1Connection::serve_http2() {
  enter(Phase::active);  // the session keeps its own time (Http2Session::sweep)
  const Http2Peer peer{client_ip_, stream_.tls() != nullptr, peer_ ? std::string_view(peer_->identity) : "",
                       peer_ ? std::string_view(peer_->xfcc) : "", destination_ ? &*destination_ : nullptr};
  h2_ = std::make_unique<Http2Session>(stream_, buffer_, host_, peer);
  co_await h2_->run();
  h2_.reset();
  error_code ec;
  stream_.socket().close(ec);
}

awaitable<bool> Http1Connection::serve_request() {
  const auto start = Clock::now();
  const auto start_wall = std::chrono::system_clock::now();
  auto handler = host_.current_handler();
  const auto& settings = handler->settings();

  state_.reset(new (core::small_pool::allocate(sizeof(RequestState))) RequestState);
  response_started_ = header_only_ = continue_pending_ = false;
  keep_alive_ = true;
  enter(Phase::reading_header, start + settings.request_headers_timeout);
  const auto read = co_await read_header(settings);
  enter(Phase::active);
  if (read == ReadResult::closed) co_return false;
  if (read != ReadResult::ok) {
    co_await refuse(*handler, read);
    co_return false;
  }

  auto& req = state_->parser.get();
  request_version_ = req.version();
  is_head_ = req.method() == bhttp::verb::head;
  if (auto e = req.find(bhttp::field::expect); e != req.end()) {
    continue_pending_ = request_version_ == 11 && beast::iequals(e->value(), "100-continue");
    req.erase(bhttp::field::expect);
  }
  keep_alive_ = req.keep_alive();

  auto& ex = state_->exchange.emplace(req, *this, start, start_wall, client_ip_);
  ex.protocol = request_version_ == 10 ? "HTTP/1.0" : "HTTP/1.1";
  if (destination_) ex.destination = &*destination_;
  if (req.find(bhttp::field::upgrade) != req.end()) ex.upgrade = upgrade_of(req.base());
  host_.listener_stats().count(observability::HttpProtocol::http1);
  if (stream_.tls()) {
    ex.downstream_tls = true;
    ex.peer_identity = peer_->identity;
    ex.client_cert_xfcc = peer_->xfcc;
  }
  ex.request_has_body = !state_->parser.is_done();
  if (ex.request_has_body && state_->parser.content_length()) ex.request_content_length = *state_->parser.content_length();
  co_await handler->handle(ex);
  route_deadline_.disarm();
  handler->complete(ex);
  if (ex.close_connection || !keep_alive_ || !state_->parser.is_done()) {
    closing_after_response_ = true;
    co_return false;
  }
  state_.reset();
  co_return true;
}

awaitable<void> Http1Connection::finish() {
  state_.reset();
  error_code ec;
  if (auto* tls = stream_.tls(); tls && closing_after_response_ && stream_.socket().is_open()) {
    // close_notify after the last response, so that the client can tell the
    // end from a truncation; bounded, for a client that never answers it.
    // (An idle or draining connection just closes, as a plain one does.)
    enter(Phase::closing, Clock::now() + kCloseNotifyTimeout);
    std::tie(ec) = co_await tls->async_shutdown(use_tuple);
  }
  stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  // Lingering close (NGINX's lingering_close, HAProxy's too): after the last
  // response, read and drop until the client's FIN, bounded, before closing.
  // Closing with the client's bytes unread (a request it sent meanwhile)
  // sends a reset, and a reset can discard the response before the client
  // has read it; and a draining proxy that exits, or a pod whose network is
  // torn down right after, would lose a response it has logged as served.
  // Waiting for the FIN means the client has it (a drain waits for this).
  if (closing_after_response_ && !timed_out_ && !peer_closed_ && !ec && stream_.socket().is_open()) {
    enter(Phase::closing, Clock::now() + kLingerCloseTimeout);
    buffer_.consume(buffer_.size());
    for (;;) {
      auto [read_ec, n] = co_await stream_.socket().async_read_some(buffer_.prepare(kReadChunk), use_tuple);
      if (read_ec || n == 0) break;
    }
  }
  stream_.socket().close(ec);
}

awaitable<void> Http1Connection::refuse(ExchangeHandler& handler, ReadResult why) {
  LocalReply reply{400, "bad request\n", "bad_request"};
  if (why == ReadResult::too_large) {
    reply = {431, "request line or headers too large\n", "request_header_too_large"};
  } else if (why == ReadResult::timeout) {
    reply = {408, "request headers not received in time\n", "request_header_timeout"};
  } else if (why == ReadResult::not_implemented) {
    reply = {501, "transfer coding not implemented\n", "not_implemented"};
  }
  reply.close = true;
  keep_alive_ = false;
  closing_after_response_ = true;  // then the lingering close in finish()
  auto& req = state_->parser.get();
  request_version_ = 11;
  is_head_ = false;
  Exchange ex{req, *this, Clock::now(), std::chrono::system_clock::now(), client_ip_};
  ex.error = ProxyError::bad_request;  // refused by the codec, whatever the status says
  enter(Phase::closing, Clock::now() + kRefusalWriteTimeout);
  co_await send_local_reply(ex, reply);
  enter(Phase::active);
  handler.complete(ex);
}

bool Http1Connection::request_body_done() const { return state_ && state_->parser.is_done(); }

awaitable<BodyRead> Http1Connection::read_body(char* buf, std::size_t size) {
  auto& p = state_->parser;
  if (p.is_done()) co_return BodyRead{StreamError::none, 0, true};
  if (continue_pending_) {
    continue_pending_ = false;
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(kContinue), use_tuple);
    if (ec) co_return BodyRead{write_error(ec)};
  }
  for (;;) {
    const auto parsed = parse_body(p, buffer_, buf, size);
    if (parsed.kind == ParsedBody::piece) {
      if (p.is_done() && p.chunked()) take_trailers(p.get().base(), state_->trailer_mark.header_fields, state_->trailers);
      co_return BodyRead{StreamError::none, parsed.bytes, p.is_done()};
    }
    if (parsed.kind == ParsedBody::malformed) co_return BodyRead{StreamError::malformed};
    const auto ec = co_await read_more();
    if (ec) co_return BodyRead{route_deadline_.expired() ? StreamError::timeout : StreamError::reset};
  }
}

StreamError Http1Connection::write_error(const error_code& ec) const {
  if (!ec) return StreamError::none;
  return route_deadline_.expired() ? StreamError::timeout : StreamError::reset;
}

bool Http1Connection::header_only_response(int status) const {
  return is_head_ || (status >= 100 && status < 200) || status == 204 || status == 304;
}

void Http1Connection::prepare_response(ResponseHeader& h, bool has_length) {
  const bool body_allowed = !header_only_response(h.result_int());
  if (body_allowed && !has_length) {
    if (request_version_ == 11) {
      h.set(bhttp::field::transfer_encoding, "chunked");
    } else {
      keep_alive_ = false;  // HTTP/1.0: the end of the body is the end of the connection
    }
  }
  if (host_.draining() || !state_ || !state_->parser.is_done()) keep_alive_ = false;
  h.version(11);
  if (!keep_alive_) {
    h.set(bhttp::field::connection, "close");
  } else if (request_version_ == 10) {
    h.set(bhttp::field::connection, "keep-alive");
  }
}

const Fields* Http1Connection::request_trailers() const {
  return state_ && state_->trailers.begin() != state_->trailers.end() ? &state_->trailers : nullptr;
}

net::TunnelEnd* Http1Connection::tunnel(std::string_view& pending) {
  const auto held = buffer_.data();
  pending = {static_cast<const char*>(held.data()), held.size()};
  if (!state_ || !state_->serializer || state_->serializer->get().result_int() != 101) return nullptr;
  if (!tunnel_) tunnel_ = std::make_unique<net::StreamEnd>(stream_);
  keep_alive_ = false;  // the connection ends with the tunnel
  return tunnel_.get();
}

awaitable<StreamError> Http1Connection::write_response(ResponseMessage& msg, const Fields* trailers) {
  if (!state_->serializer && msg.result_int() == 101) {
    // Switching protocols: Connection and Upgrade are the point of it; the
    // bytes after it are the tunnel's (see tunnel()).
    response_started_ = header_only_ = true;
    msg.version(11);
    state_->serializer.emplace(msg);
    co_return write_error(co_await write_serialized(stream_, *state_->serializer, true));
  }
  if (!state_->serializer) {
    strip_hop_by_hop(msg.base());
    prepare_response(msg.base(), msg.find(bhttp::field::content_length) != msg.end());
    response_started_ = true;
    header_only_ = header_only_response(msg.result_int());
    state_->chunked_response = msg.chunked();
    state_->serializer.emplace(msg);
    if (header_only_) co_return write_error(co_await write_serialized(stream_, *state_->serializer, true));
  } else if (header_only_) {
    co_return StreamError::none;
  }
  if (trailers && !msg.body().more && state_->chunked_response) {
    // The serializer writes the last piece as a chunk; the last chunk, with
    // the trailer fields, is Beast's chunk_last.
    msg.body().more = true;
    const auto ec = co_await write_serialized(stream_, *state_->serializer);
    msg.body().more = false;
    if (ec) co_return write_error(ec);
    co_return write_error(co_await write_last_chunk(stream_, *trailers));
  }
  co_return write_error(co_await write_serialized(stream_, *state_->serializer));
}

awaitable<StreamError> Http1Connection::write_local_reply(ResponseHeader& header, std::string_view body) {
  if (response_started_) co_return StreamError::reset;
  response_started_ = true;
  ResponseMessage res(std::move(header));
  const int status = res.result_int();
  const bool no_body = (status >= 100 && status < 200) || status == 204 || status == 304;
  if (no_body) {
    res.erase(bhttp::field::content_type);
    res.erase(bhttp::field::content_length);
  } else {
    res.content_length(body.size());  // also for HEAD: what a GET would have carried
  }
  prepare_response(res.base(), true);
  const bool send_body = !header_only_response(status) && !body.empty();
  res.body().data = send_body ? const_cast<char*>(body.data()) : nullptr;
  res.body().size = send_body ? body.size() : 0;
  res.body().more = false;
  bhttp::response_serializer<bhttp::buffer_body, Fields> sr(res);
  const auto ec = co_await write_serialized(stream_, sr, !send_body);
  header = std::move(res.base());
  co_return write_error(ec);
}

}  // namespace outrigger::http
