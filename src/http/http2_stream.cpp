#include "outrigger/http/http2_stream.hpp"

#include <nghttp2/nghttp2.h>

#include <boost/beast/core/string.hpp>
#include <charconv>
#include <cstring>
#include <utility>
#include <vector>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <boost/asio/error.hpp>

#include "http2_io.hpp"
#include "outrigger/net/tunnel.hpp"
#include "outrigger/http/http2_session.hpp"

namespace outrigger::http {

namespace bhttp = boost::beast::http;

namespace {
constexpr std::size_t kHighWater = 32 * 1024;  // response bytes queued per stream before the exchange waits

bool header_only_status(int status) { return status < 200 || status == 204 || status == 304; }

using h2::is_connection_specific;
using h2::lower;
}  // namespace

struct Http2Stream::Provider {
  static ssize_t read(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length, std::uint32_t* flags,
                      nghttp2_data_source* source, void*) {
    auto& s = *static_cast<Http2Stream*>(source->ptr);
    const auto avail = s.out_.size() - s.out_offset_;
    if (avail == 0) {
      if (!s.out_eof_) return NGHTTP2_ERR_DEFERRED;  // resumed when the exchange queues more
      s.end_body(flags);
      return 0;
    }
    const auto n = std::min(length, avail);
    s.touch();
    std::memcpy(buf, s.out_.data() + s.out_offset_, n);
    s.out_offset_ += n;
    if (s.out_offset_ == s.out_.size()) {
      s.out_.clear();
      s.out_offset_ = 0;
      if (s.out_eof_) s.end_body(flags);
    }
    s.wake_out_.notify();  // room again for an exchange waiting to queue more
    return static_cast<ssize_t>(n);
  }
};

void Http2Stream::end_body(std::uint32_t* flags) {
  *flags |= NGHTTP2_DATA_FLAG_EOF;
  if (response_trailers_.empty()) return;
  // The trailers end the stream instead of the last DATA frame.
  *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
  std::vector<nghttp2_nv> nva;
  nva.reserve(response_trailers_.size());
  for (const auto& [n, v] : response_trailers_) nva.push_back(h2::field(n, v));
  nghttp2_submit_trailer(session_.session_, id_, nva.data(), nva.size());
}

Http2Stream::Http2Stream(Http2Session& session, std::int32_t id)
    : session_(session),
      id_(id),
      start_(Clock::now()),
      start_wall_(std::chrono::system_clock::now()),
      wake_in_(session.stream_.get_executor()),
      wake_out_(session.stream_.get_executor()),
      deadline_(session.host_.deadlines()) {
  request_.version(11);
  last_activity_ = start_;
}


void Http2Stream::on_header(std::string_view name, std::string_view value, bool request) {
  header_bytes_ += name.size() + value.size() + 32;  // RFC 9113 §6.5.2's accounting
  if (header_bytes_ > session_.settings_.http2.max_header_list_size) {
    // Counted once, then only summed: an HPACK bomb (one table entry named
    // again and again) costs a callback per name, and no memory.
    if (!std::exchange(too_large_, true)) session_.count(observability::Http2Event::header_list_too_large);
    bad_request_ = true;
    return;
  }
  if (!request) {  // the request's trailers
    if (!name.empty() && name.front() == ':') return;  // nghttp2 refuses these already
    trailers_.insert(name, value);
    return;
  }
  if (!name.empty() && name.front() == ':') {
    if (name == ":method") {
      request_.method_string(value);
      is_head_ = value == "HEAD";
    } else if (name == ":path") {
      request_.target(value);
    } else if (name == ":authority") {
      authority_.assign(value);
    } else if (name == ":protocol") {
      protocol_.assign(value);  // extended CONNECT (RFC 8441); nghttp2 checked it is allowed
    }
    return;  // :scheme says what the client used; the listener knows it too
  }
  if (name == "cookie") {
    // HTTP/2 splits cookies into fields of their own; an HTTP/1.1 hop wants
    // them in one (RFC 9113 §8.2.3).
    if (auto it = request_.find(bhttp::field::cookie); it != request_.end()) {
      std::string joined(it->value());
      joined.append("; ").append(value);
      request_.set(bhttp::field::cookie, joined);
      return;
    }
  }
  request_.insert(name, value);
}

void Http2Stream::on_request_headers(bool end_stream) {
  remote_ended_ = end_stream;
  if (!protocol_.empty() && request_.method() == bhttp::verb::connect) {
    // An extended CONNECT goes on as the HTTP/1.1 upgrade it stands for
    // (RFC 8441 §5): GET with Upgrade; the router answers 200 for its 101.
    for (auto& c : protocol_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    request_.method(bhttp::verb::get);
    request_.set(bhttp::field::upgrade, protocol_);
    request_.set(bhttp::field::connection, "upgrade");
    if (protocol_ == "websocket" && request_.find(bhttp::field::sec_websocket_key) == request_.end()) {
      // HTTP/2 has no key; an HTTP/1.1 server wants one (RFC 6455 §4.1).
      unsigned char nonce[16];
      RAND_bytes(nonce, sizeof nonce);
      char key[32] = {};
      const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(key), nonce, sizeof nonce);
      request_.set(bhttp::field::sec_websocket_key, std::string_view(key, static_cast<std::size_t>(n)));
    }
    extended_connect_ = true;
  }
  if (authority_.empty()) return;
  if (auto host = request_.find(bhttp::field::host); host != request_.end()) {
    // Host and :authority must name the same thing (RFC 9113 §8.3.1).
    if (!boost::beast::iequals(host->value(), authority_)) bad_request_ = true;
  } else {
    request_.set(bhttp::field::host, authority_);
  }
}

void Http2Stream::on_data(std::string_view data) {
  if (discard_left_ > 0) {
    nghttp2_session_consume(session_.session_, id_, data.size());
    if (data.size() >= discard_left_) {
      discard_left_ = 0;
      nghttp2_submit_rst_stream(session_.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_NO_ERROR);  // enough of it
    } else {
      discard_left_ -= data.size();
    }
    session_.wake_writer();
    return;
  }
  in_.append(data);
  wake();
}

void Http2Stream::discard_rest(std::size_t bound) {
  discard_left_ = bound;
  if (in_offset_ < in_.size()) nghttp2_session_consume(session_.session_, id_, in_.size() - in_offset_);
  in_.clear();
  in_offset_ = 0;
}

void Http2Stream::on_remote_end() {
  remote_ended_ = true;
  wake();
}

std::size_t Http2Stream::on_closed(std::uint32_t) {
  closed_ = true;
  reset_ = true;  // whatever comes next on it fails
  wake();
  gone();
  const auto unread = in_.size() - in_offset_;
  in_.clear();
  in_offset_ = 0;
  return unread;
}

void Http2Stream::on_connection_lost() {
  reset_ = true;
  wake();
  gone();
}

void Http2Stream::gone() {
  if (auto* w = std::exchange(gone_watcher_, nullptr); w && !response_complete()) w->client_gone();
}

awaitable<void> Http2Stream::serve(std::shared_ptr<ExchangeHandler> handler) {
  running_ = true;
  session_.host_.listener_stats().count(observability::HttpProtocol::http2);
  {
    Exchange ex(request_, *this, start_, start_wall_, session_.peer_.client_ip);
    ex.protocol = "HTTP/2";
    ex.downstream_tls = session_.peer_.tls;
    ex.peer_identity = session_.peer_.identity;
    ex.destination = session_.peer_.destination;
    ex.client_cert_xfcc = session_.peer_.xfcc;
    ex.request_has_body = !extended_connect_ && (!remote_ended_ || !in_.empty());
    if (extended_connect_) {
      ex.upgrade = protocol_;  // its own copy: the header goes when the router rewrites it
      ex.extended_connect = true;
    }
    if (const auto cl = request_.find(bhttp::field::content_length); cl != request_.end()) {
      std::uint64_t v = 0;
      const auto text = cl->value();
      if (std::from_chars(text.data(), text.data() + text.size(), v).ec == std::errc()) ex.request_content_length = v;
    }
    if (bad_request_) {
      session_.host_.listener_stats().bad_requests.inc();
      ex.error = ProxyError::bad_request;
      LocalReply reply = local_reply_for(ProxyError::bad_request);
      if (too_large_) reply = {431, "request headers too large\n", "request_header_too_large"};
      reply.close = false;  // one stream, not the connection
      co_await send_local_reply(ex, reply);
    } else {
      co_await handler->handle(ex);
    }
    deadline_.disarm();
    handler->complete(ex);
  }
  running_ = false;
  session_.exchange_ended(*this);  // may destroy this stream: the last thing done
}

awaitable<BodyRead> Http2Stream::read_body(char* buf, std::size_t size) {
  for (;;) {
    if (in_offset_ < in_.size()) {
      const auto n = h2::take(in_, in_offset_, buf, size);
      // Only now may the client send that much more.
      nghttp2_session_consume(session_.session_, id_, n);
      session_.wake_writer();
      co_return BodyRead{StreamError::none, n, remote_ended_ && in_.empty()};
    }
    if (remote_ended_) co_return BodyRead{StreamError::none, 0, true};
    if (reset_ || timed_out_) co_return BodyRead{failure()};
    if (!reading_) touch();  // the client's wait starts now
    reading_ = true;
    co_await wake_in_.wait();
    reading_ = false;
  }
}

StreamError Http2Stream::failure() const { return timed_out_ ? StreamError::timeout : StreamError::reset; }

bool Http2Stream::submit(ResponseHeader& header, bool with_body) {
  strip_hop_by_hop(header);
  char status[4];
  const auto code = std::to_chars(status, status + sizeof status, header.result_int());
  h2::FieldList fields;  // lower case: HTTP/2 field names are (RFC 9113 §8.2)
  fields.reserve_for(header);
  fields.add(":status", {status, static_cast<std::size_t>(code.ptr - status)});
  for (const auto& f : header) fields.add_lowered(f);
  auto& nva = fields.nva;
  nghttp2_data_provider provider;
  provider.source.ptr = this;
  provider.read_callback = &Provider::read;
  // nghttp2 copies the fields: the views above may go after this call.
  const int rv = nghttp2_submit_response(session_.session_, id_, nva.data(), nva.size(), with_body ? &provider : nullptr);
  session_.wake_writer();
  return rv == 0;
}

awaitable<StreamError> Http2Stream::write_response(ResponseMessage& msg, const Fields* trailers) {
  if (reset_ || timed_out_) co_return failure();
  if (trailers && !msg.body().more) {
    for (const auto& f : *trailers) {
      if (is_connection_specific(f.name_string())) continue;
      response_trailers_.emplace_back(lower(f.name_string()), f.value());
    }
  }
  if (!response_started_) {
    response_started_ = true;
    header_only_ = is_head_ || header_only_status(msg.result_int());
    // Trailers need a body to follow (an empty one will do).
    const bool with_body = !header_only_ && (msg.body().more || msg.body().size > 0 || !response_trailers_.empty());
    if (!submit(msg.base(), with_body)) co_return StreamError::reset;
    if (!with_body) {
      header_only_ = true;  // the HEADERS frame ends the stream
      co_return StreamError::none;
    }
  }
  if (header_only_) co_return StreamError::none;
  if (msg.body().size > 0) {
    if (out_offset_ == out_.size()) touch();  // the client's wait starts now
    out_.append(static_cast<const char*>(msg.body().data), msg.body().size);
  }
  if (!msg.body().more) out_eof_ = true;
  nghttp2_session_resume_data(session_.session_, id_);
  session_.wake_writer();
  if (out_.size() - out_offset_ <= kHighWater) co_return StreamError::none;  // no wait, no frame for one
  co_return co_await drain_output();
}

awaitable<StreamError> Http2Stream::drain_output() {
  while (out_.size() - out_offset_ > kHighWater) {
    if (reset_ || timed_out_) co_return failure();
    co_await wake_out_.wait();
  }
  co_return StreamError::none;
}

awaitable<StreamError> Http2Stream::write_local_reply(ResponseHeader& header, std::string_view body) {
  if (response_started_ || reset_) co_return StreamError::reset;
  response_started_ = true;
  const int status = header.result_int();
  header_only_ = is_head_ || header_only_status(status);
  if (header_only_status(status)) {
    header.erase(bhttp::field::content_type);
    header.erase(bhttp::field::content_length);
  } else {
    // END_STREAM frames it; a length is said only for a body (a gRPC error
    // has none, and its client would take the field for metadata).
    if (body.empty()) header.erase(bhttp::field::content_length);
    else header.set(bhttp::field::content_length, std::to_string(body.size()));
  }
  const bool with_body = !header_only_ && !body.empty();
  if (with_body) {
    out_.assign(body);
    out_eof_ = true;
  } else {
    header_only_ = true;
  }
  if (!submit(header, with_body)) co_return StreamError::reset;
  co_return StreamError::none;
}

void Http2Stream::arm_deadline(Clock::time_point at) {
  timed_out_ = false;
  deadline_.arm(at, &Http2Stream::on_deadline, this);
}

void Http2Stream::on_deadline(void* self) {
  auto& s = *static_cast<Http2Stream*>(self);
  s.timed_out_ = true;
  s.wake();
}

void Http2Stream::wake() {
  wake_in_.notify();
  wake_out_.notify();
}

// The stream as one side of a tunnel: DATA from the client is read as the
// request body, bytes for it go as the response body, and its end is
// END_STREAM (a half-close, as RFC 8441 §4 says).
class Http2Stream::Tunnel final : public net::TunnelEnd {
 public:
  explicit Tunnel(Http2Stream& s) : s_(s) {}
  awaitable<std::pair<error_code, std::size_t>> read(char* buf, std::size_t size) override {
    if (done_) co_return std::pair{error_code(boost::asio::error::eof), std::size_t{0}};
    const auto r = co_await s_.read_body(buf, size);
    if (r.error != StreamError::none) co_return std::pair{error_code(boost::asio::error::connection_reset), std::size_t{0}};
    done_ = r.done;
    if (r.bytes == 0 && r.done) co_return std::pair{error_code(boost::asio::error::eof), std::size_t{0}};
    co_return std::pair{error_code(), r.bytes};
  }
  awaitable<error_code> write(std::string_view bytes) override {
    msg_.body().data = const_cast<char*>(bytes.data());
    msg_.body().size = bytes.size();
    msg_.body().more = true;
    const auto e = co_await s_.write_response(msg_, nullptr);
    co_return e == StreamError::none ? error_code() : error_code(boost::asio::error::connection_reset);
  }
  awaitable<void> finish() override {
    msg_.body().data = nullptr;
    msg_.body().size = 0;
    msg_.body().more = false;
    co_await s_.write_response(msg_, nullptr);
  }
  void abort() override {
    if (!s_.closed_ && !s_.reset_) {
      nghttp2_submit_rst_stream(s_.session_.session_, NGHTTP2_FLAG_NONE, s_.id_, NGHTTP2_CANCEL);
      s_.session_.wake_writer();
    }
    s_.reset_ = true;
    s_.wake();
  }

 private:
  Http2Stream& s_;
  ResponseMessage msg_;
  bool done_ = false;
};

Http2Stream::~Http2Stream() = default;

net::TunnelEnd* Http2Stream::tunnel(std::string_view& pending) {
  pending = {};
  if (!extended_connect_ || !response_started_) return nullptr;
  if (!tunnel_) tunnel_ = std::make_unique<Tunnel>(*this);
  return tunnel_.get();
}

}  // namespace outrigger::http
