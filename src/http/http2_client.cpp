#include "outrigger/http/http2_client.hpp"

#include <nghttp2/nghttp2.h>
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <algorithm>
#include <charconv>
#include <cstring>

#include "http2_io.hpp"
#include "outrigger/http/headers.hpp"

namespace outrigger::http {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {
constexpr std::size_t kHighWater = 32 * 1024;        // request body bytes queued per stream before the router waits
constexpr std::uint32_t kDefaultHeaderList = 96 * 1024;  // a response header block larger than this is refused

Http2ClientStream* stream_of(nghttp2_session* session, std::int32_t id) {
  return static_cast<Http2ClientStream*>(nghttp2_session_get_stream_user_data(session, id));
}
Http2Client& client_of(void* user_data) { return *static_cast<Http2Client*>(user_data); }
}  // namespace

// nghttp2's callbacks, each a thin step into the client or one of its streams.
struct Http2Client::Callbacks {
  static int on_begin_headers(nghttp2_session* session, const nghttp2_frame* frame, void*) {
    if (auto* s = stream_of(session, frame->hd.stream_id)) {
      s->in_header_ = true;
      s->interim_ = false;
    }
    return 0;
  }

  static int on_header(nghttp2_session* session, const nghttp2_frame* frame, const std::uint8_t* name,
                       std::size_t namelen, const std::uint8_t* value, std::size_t valuelen, std::uint8_t, void*) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    if (auto* s = stream_of(session, frame->hd.stream_id))
      s->on_header({reinterpret_cast<const char*>(name), namelen}, {reinterpret_cast<const char*>(value), valuelen});
    return 0;
  }

  static int on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    auto& self = client_of(user_data);
    using observability::Http2Event;
    switch (frame->hd.type) {
      case NGHTTP2_GOAWAY:
        // Streams above its last id were not processed: nghttp2 closes them
        // with REFUSED_STREAM, and the router sends them again elsewhere.
        self.going_away_ = true;
        self.count(Http2Event::goaway_received);
        if (self.events_) self.events_->stream_released();  // waiters open a new connection
        return 0;
      case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) self.ping_sent_ = Clock::time_point::max();
        return 0;
      case NGHTTP2_SETTINGS:
        // The upstream's max_concurrent_streams may have grown.
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && self.events_) self.events_->stream_released();
        return 0;
      case NGHTTP2_RST_STREAM: self.count(Http2Event::reset_received); break;
      default: break;
    }
    auto* s = stream_of(session, frame->hd.stream_id);
    if (!s) return 0;
    const bool end_stream = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (frame->hd.type == NGHTTP2_HEADERS) {
      s->on_headers_end(end_stream);
    } else if (frame->hd.type == NGHTTP2_DATA && end_stream) {
      s->remote_ended_ = true;
      s->wake_.notify();
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session* session, std::uint8_t, std::int32_t stream_id, const std::uint8_t* data,
                           std::size_t len, void*) {
    if (auto* s = stream_of(session, stream_id)) {
      s->on_data({reinterpret_cast<const char*>(data), len});
    } else {
      nghttp2_session_consume_connection(session, len);  // a stream given up: its window is the connection's
    }
    return 0;
  }

  static int on_stream_close(nghttp2_session* session, std::int32_t stream_id, std::uint32_t error_code, void*) {
    if (auto* s = stream_of(session, stream_id)) s->on_closed(error_code);
    return 0;
  }

  static int on_frame_not_send(nghttp2_session* session, const nghttp2_frame* frame, int, void*) {
    // A request whose HEADERS never left (GOAWAY came first): not processed.
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    if (auto* s = stream_of(session, frame->hd.stream_id)) s->on_not_sent();
    return 0;
  }

  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    auto& self = client_of(user_data);
    if (frame->hd.type == NGHTTP2_RST_STREAM) self.count(observability::Http2Event::reset_sent);
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      self.going_away_ = true;
      if (frame->goaway.error_code != NGHTTP2_NO_ERROR) self.count(observability::Http2Event::goaway_sent);
    }
    return 0;
  }

  static int on_error(nghttp2_session*, int, const char* msg, std::size_t len, void*) {
    spdlog::debug("http2 upstream: {}", std::string_view(msg, len));
    return 0;
  }
};

Http2Client::Http2Client(net::Stream& stream, core::DeadlineQueue& deadlines, const config::Http2& settings, bool tls,
                         std::uint32_t max_streams_total, observability::Http2Slice* stats,
                         Http2ClientEvents* events)
    : Http2Transport(stream, Buffer()),
      deadlines_(deadlines),
      settings_(settings),
      tls_(tls),
      max_streams_total_(max_streams_total),
      stats_(stats),
      events_(events),
      idle_since_(Clock::now()),
      last_read_(idle_since_) {
  if (settings_.max_header_list_size == 0) settings_.max_header_list_size = kDefaultHeaderList;
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &Callbacks::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &Callbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Callbacks::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Callbacks::on_stream_close);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, &Callbacks::on_frame_not_send);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &Callbacks::on_frame_send);
  nghttp2_session_callbacks_set_error_callback2(
      cbs, [](nghttp2_session* s, int code, const char* msg, std::size_t len, void* u) {
        return Callbacks::on_error(s, code, msg, len, u);
      });
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);  // the window opens as the router takes the bytes
  nghttp2_option_set_max_continuations(opt, 8);
  nghttp2_option_set_max_settings(opt, 32);
  nghttp2_option_set_max_outbound_ack(opt, 1000);
  nghttp2_option_set_no_closed_streams(opt, 1);  // memory: no priority tree of closed streams kept
  nghttp2_session_client_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);

  const nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, settings_.initial_stream_window_size},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings_.max_header_list_size},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, std::size(iv));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<std::int32_t>(settings_.initial_connection_window_size));
  if (stats_) {
    stats_->connections_total.inc();
    stats_->connections_active.add(1);
  }
}

Http2Client::~Http2Client() {
  for (auto* s : streams_) s->on_connection_lost(false);  // none, unless the owner goes first
  nghttp2_session_del(session_);
  if (stats_) stats_->connections_active.add(-1);
}

std::uint32_t Http2Client::stream_limit() const {
  const auto peer = nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return std::min(settings_.max_concurrent_streams, peer);
}

bool Http2Client::accepts_streams() const {
  if (closing_ || closed_ || going_away_) return false;
  if (max_streams_total_ && opened_ >= max_streams_total_) return false;
  return active_ < stream_limit();
}

std::unique_ptr<Http2ClientStream> Http2Client::open_stream() {
  auto s = std::make_unique<Http2ClientStream>(*this, opened_ > 0);
  ++opened_;
  ++active_;
  streams_.push_back(s.get());
  return s;
}

void Http2Client::stream_done(Http2ClientStream& s) {
  std::erase(streams_, &s);
  --active_;
  if (active_ == 0) idle_since_ = Clock::now();
  if (closed_) return;
  // A connection that may carry no more streams ends with its last one.
  if (active_ == 0 && (going_away_ || (max_streams_total_ && opened_ >= max_streams_total_))) close();
  wake_writer();
  if (events_) events_->stream_released();
}

asio::awaitable<void> Http2Client::run() {
  using namespace asio::experimental::awaitable_operators;
  wake_writer();  // the preface and SETTINGS go first
  co_await (read_loop() && write_loop());
  closed_ = true;
  going_away_ = true;
  // Whatever still waits on a stream learns that the connection is gone.
  const auto last = nghttp2_session_get_last_proc_stream_id(session_);
  for (auto* s : streams_) s->on_connection_lost(s->id_ < 0 || (last > 0 && s->id_ > last));
}

void Http2Client::close_socket() {
  boost::system::error_code ec;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  stream_.socket().cancel(ec);
}

void Http2Client::fail(int error) {
  spdlog::debug("http2 upstream: closing the connection: {}", nghttp2_strerror(error));
  count(observability::Http2Event::protocol_error);
  closing_ = true;
}

void Http2Client::close() {
  if (closed_ || closing_) return;
  going_away_ = true;
  // GOAWAY, then nothing more to read: the writer sends it and closes.
  nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
  wake_writer();
}

void Http2Client::orphan() {
  events_ = nullptr;
  if (stats_) stats_->connections_active.add(-1);  // none for the xDS client's connection
  stats_ = nullptr;
  closing_ = true;
  close_socket();
  wake_writer();
}

void Http2Client::sweep(Clock::time_point now) {
  if (closed_ || closing_) return;
  if (ping_sent_ != Clock::time_point::max()) {
    if (now - ping_sent_ < settings_.ping_timeout) return;
    // The upstream answers nothing, not even a PING: the connection is dead
    // (a peer that vanished without a FIN), and its streams fail now
    // instead of at their timeouts.
    count(observability::Http2Event::keepalive_timeout);
    closing_ = true;
    close_socket();
    return;
  }
  if (settings_.ping_interval.count() > 0 && now - last_read_ >= settings_.ping_interval) {
    nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
    ping_sent_ = now;
    wake_writer();
  }
}

// --- one stream ------------------------------------------------------------

struct Http2ClientStream::Provider {
  static ssize_t read(nghttp2_session* session, std::int32_t id, std::uint8_t* buf, std::size_t length,
                      std::uint32_t* flags, nghttp2_data_source*, void*) {
    auto* s = stream_of(session, id);
    if (!s) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // given up: nghttp2 resets it
    const auto avail = s->out_.size() - s->out_offset_;
    if (avail == 0) {
      if (!s->out_eof_) return NGHTTP2_ERR_DEFERRED;  // resumed when the router queues more
      s->end_body(flags);
      return 0;
    }
    const auto n = std::min(length, avail);
    std::memcpy(buf, s->out_.data() + s->out_offset_, n);
    s->out_offset_ += n;
    if (s->out_offset_ == s->out_.size()) {
      s->out_.clear();
      s->out_offset_ = 0;
      if (s->out_eof_) s->end_body(flags);
    }
    s->wake_.notify();  // room again for a router waiting to queue more
    return static_cast<ssize_t>(n);
  }
};

Http2ClientStream::Http2ClientStream(Http2Client& client, bool reused)
    : client_(client),
      reused_(reused),
      wake_(client.stream_.get_executor()),
      deadline_(client.deadlines_) {
  response_.version(11);
}

Http2ClientStream::~Http2ClientStream() {
  deadline_.disarm();
  if (id_ > 0) {
    nghttp2_session_set_stream_user_data(client_.session_, id_, nullptr);
    // Bytes that arrived and were never read still count against the
    // connection's window.
    if (in_offset_ < in_.size()) nghttp2_session_consume_connection(client_.session_, in_.size() - in_offset_);
    // A stream given up before its end (the client went, a timeout, a
    // retry elsewhere) is cancelled, so that the upstream stops working on it.
    if (!closed_) nghttp2_submit_rst_stream(client_.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
  }
  client_.stream_done(*this);
}

void Http2ClientStream::set_deadline(Clock::time_point at) {
  timed_out_ = false;
  deadline_.arm(at, &Http2ClientStream::on_deadline, this);
}

void Http2ClientStream::on_deadline(void* self) {
  auto& s = *static_cast<Http2ClientStream*>(self);
  s.timed_out_ = true;
  s.wake_.notify();
}

UpstreamError Http2ClientStream::failure() const {
  if (timed_out_) return UpstreamError::timeout;
  if (refused_) return UpstreamError::not_processed;
  if (protocol_error_) return UpstreamError::protocol;
  return UpstreamError::reset;
}

bool Http2ClientStream::submit(RequestMessage& req, bool with_body) {
  head_ = req.method() == bhttp::verb::head;
  h2::FieldList fields;  // lower case, alive until nghttp2 has copied them
  fields.reserve_for(req);
  auto& nva = fields.nva;
  std::string_view authority;
  if (auto host = req.find(bhttp::field::host); host != req.end()) authority = host->value();
  nva.push_back(h2::field(":method", req.method_string()));
  nva.push_back(h2::field(":scheme", client_.tls_ ? "https" : "http"));
  // :authority stands for Host (RFC 9113 §8.3.1); CONNECT is not proxied here.
  if (!authority.empty()) nva.push_back(h2::field(":authority", authority));
  nva.push_back(h2::field(":path", req.target().empty() ? std::string_view("/") : std::string_view(req.target())));
  for (const auto& f : req) {
    const auto name = f.name_string();
    if (f.name() == bhttp::field::host) continue;
    if (h2::is_connection_specific(name)) {
      if (f.name() == bhttp::field::te && accepts_trailers(req.base())) nva.push_back(h2::field("te", "trailers"));
      continue;
    }
    fields.add_lowered(f);
  }
  nghttp2_data_provider provider;
  provider.source.ptr = nullptr;  // the stream is found by its id: it may be gone when nghttp2 asks
  provider.read_callback = &Provider::read;
  const auto id = nghttp2_submit_request(client_.session_, nullptr, nva.data(), nva.size(),
                                         with_body ? &provider : nullptr, this);
  if (id < 0) {
    refused_ = true;  // the session takes no more streams: never sent
    return false;
  }
  id_ = id;
  client_.wake_writer();
  return true;
}

awaitable<UpstreamError> Http2ClientStream::write_request(RequestMessage& req, const Fields* trailers) {
  if (remote_ended_) co_return UpstreamError::none;  // the upstream answered already: the rest is not needed
  if (closed_ || reset_ || refused_ || timed_out_) co_return failure();
  const auto& body = req.body();
  if (!body.more && trailers) {
    for (const auto& f : *trailers) {
      if (h2::is_connection_specific(f.name_string())) continue;
      request_trailers_.emplace_back(h2::lower(f.name_string()), f.value());
    }
  }
  if (id_ < 0) {
    const bool with_body = body.more || body.size > 0 || !request_trailers_.empty();
    if (!submit(req, with_body)) co_return failure();
    if (!with_body) co_return UpstreamError::none;
  }
  if (body.size > 0) out_.append(static_cast<const char*>(body.data), body.size);
  if (!body.more) out_eof_ = true;
  nghttp2_session_resume_data(client_.session_, id_);
  client_.wake_writer();
  while (out_.size() - out_offset_ > kHighWater) {
    if (remote_ended_) co_return UpstreamError::none;
    if (closed_ || reset_ || refused_ || timed_out_) co_return failure();
    co_await wake_.wait();
  }
  co_return UpstreamError::none;
}

void Http2ClientStream::end_body(std::uint32_t* flags) {
  *flags |= NGHTTP2_DATA_FLAG_EOF;
  if (request_trailers_.empty()) return;
  *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;  // the trailers end the stream
  std::vector<nghttp2_nv> nva;
  nva.reserve(request_trailers_.size());
  for (const auto& [n, v] : request_trailers_) nva.push_back(h2::field(n, v));
  nghttp2_submit_trailer(client_.session_, id_, nva.data(), nva.size());
}

void Http2ClientStream::on_header(std::string_view name, std::string_view value) {
  header_bytes_ += name.size() + value.size() + 32;  // RFC 9113 §6.5.2's accounting
  if (header_bytes_ > client_.settings_.max_header_list_size) {
    if (!std::exchange(too_large_, true)) client_.count(observability::Http2Event::header_list_too_large);
    return;
  }
  if (final_) {  // the trailers
    if (name.empty() || name.front() == ':') return;
    trailers_.insert(name, value);
    has_trailers_ = true;
    return;
  }
  if (name == ":status") {
    int status = 0;
    std::from_chars(value.data(), value.data() + value.size(), status);
    interim_ = status < 200;
    if (!interim_) response_.result(static_cast<unsigned>(status));
    return;
  }
  if (interim_ || name.empty() || name.front() == ':') return;
  response_.insert(name, value);
}

void Http2ClientStream::on_headers_end(bool end_stream) {
  in_header_ = false;
  if (too_large_) {
    protocol_error_ = true;
    reset_ = true;
    nghttp2_submit_rst_stream(client_.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_PROTOCOL_ERROR);
    client_.wake_writer();
  } else if (interim_) {
    header_bytes_ = 0;  // 1xx responses are dropped; the final one follows
    return;
  } else if (!final_) {
    final_ = true;
    header_bytes_ = 0;
  }
  if (end_stream) remote_ended_ = true;
  wake_.notify();
}

void Http2ClientStream::on_data(std::string_view data) {
  in_.append(data);
  wake_.notify();
}

void Http2ClientStream::on_closed(std::uint32_t error_code) {
  closed_ = true;
  if (!remote_ended_) {
    if (error_code == NGHTTP2_REFUSED_STREAM && !final_) refused_ = true;
    else if (error_code == NGHTTP2_PROTOCOL_ERROR) protocol_error_ = true;
    reset_ = true;
  }
  wake_.notify();
}

void Http2ClientStream::on_not_sent() {
  refused_ = true;
  closed_ = true;
  wake_.notify();
}

void Http2ClientStream::on_connection_lost(bool unprocessed) {
  if (!remote_ended_) {
    if (unprocessed && !final_) refused_ = true;
    reset_ = true;
  }
  closed_ = true;
  wake_.notify();
}

awaitable<UpstreamError> Http2ClientStream::read_response_header() {
  for (;;) {
    if (final_ && !protocol_error_) co_return UpstreamError::none;
    if (id_ < 0 && !refused_) co_return UpstreamError::reset;  // never sent: nothing to wait for
    if (reset_ || refused_ || timed_out_ || closed_) co_return failure();
    co_await wake_.wait();
  }
}

awaitable<UpstreamBodyRead> Http2ClientStream::read_response_body(char* buf, std::size_t size) {
  for (;;) {
    if (in_offset_ < in_.size()) {
      const auto n = h2::take(in_, in_offset_, buf, size);
      // Only now may the upstream send that much more.
      nghttp2_session_consume(client_.session_, id_, n);
      client_.wake_writer();
      co_return UpstreamBodyRead{UpstreamError::none, n, remote_ended_ && in_.empty()};
    }
    if (remote_ended_ || head_) co_return UpstreamBodyRead{UpstreamError::none, 0, true};
    if (reset_ || timed_out_ || closed_) {
      auto e = failure();
      if (e == UpstreamError::not_processed) e = UpstreamError::reset;  // part of the response came
      co_return UpstreamBodyRead{e};
    }
    co_await wake_.wait();
  }
}

void Http2ClientStream::abandon() {
  if (id_ > 0 && !closed_) {
    nghttp2_submit_rst_stream(client_.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
    client_.wake_writer();
  }
  reset_ = true;
  wake_.notify();
}

}  // namespace outrigger::http
