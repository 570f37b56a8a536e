#include "outrigger/http/http2_session.hpp"

#include <nghttp2/nghttp2.h>
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <algorithm>
#include <cstring>

#include "http2_io.hpp"
#include "outrigger/http/http2_stream.hpp"

namespace outrigger::http {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;

namespace {
constexpr auto kGoawayAfterNotice = std::chrono::milliseconds(100);
constexpr std::size_t kRememberedStreams = 256;  // ids kept to tell a closed stream from one never opened
constexpr std::uint64_t kResetBurst = 1000, kResetsPerSecond = 33;  // nghttp2's defaults, said here
constexpr std::uint32_t kControlFrameBudget = 1000;  // control frames in a row without a request or DATA between

Http2Session& session_of(void* user_data) { return *static_cast<Http2Session*>(user_data); }
}  // namespace

// nghttp2's callbacks, each a thin step into the session or one of its streams.
struct Http2Session::Callbacks {
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    auto& self = session_of(user_data);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    auto stream = std::make_unique<Http2Stream>(self, frame->hd.stream_id);
    nghttp2_session_set_stream_user_data(self.session_, frame->hd.stream_id, stream.get());
    self.streams_.emplace(frame->hd.stream_id, std::move(stream));
    ++self.open_streams_;
    return 0;
  }

  static int on_header(nghttp2_session* session, const nghttp2_frame* frame, const std::uint8_t* name,
                       std::size_t namelen, const std::uint8_t* value, std::size_t valuelen, std::uint8_t,
                       void*) {
    auto* s = static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
    if (!s || frame->hd.type != NGHTTP2_HEADERS) return 0;
    s->on_header({reinterpret_cast<const char*>(name), namelen}, {reinterpret_cast<const char*>(value), valuelen},
                 frame->headers.cat == NGHTTP2_HCAT_REQUEST);
    return 0;
  }

  static int on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    auto& self = session_of(user_data);
    if (!account(self, *frame)) return 0;
    auto* s = static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
    if (!s) return 0;
    s->touch();
    const bool end_stream = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      s->on_request_headers(end_stream);
      self.start_exchange(*s);
    } else if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) && end_stream) {
      s->on_remote_end();
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session* session, std::uint8_t, std::int32_t stream_id, const std::uint8_t* data,
                           std::size_t len, void*) {
    auto* s = static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
    if (s) {
      s->on_data({reinterpret_cast<const char*>(data), len});
    } else {
      nghttp2_session_consume_connection(session, len);  // a stream we no longer follow
    }
    return 0;
  }

  static int on_stream_close(nghttp2_session* session, std::int32_t stream_id, std::uint32_t error_code,
                             void* user_data) {
    auto* s = static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
    if (s) session_of(user_data).stream_closed(*s, error_code);
    return 0;
  }

  // Counts a frame received; false when it crossed a limit and the session ends.
  static bool account(Http2Session& self, const nghttp2_frame& frame) {
    using observability::Http2Event;
    bool control = false;
    switch (frame.hd.type) {
      case NGHTTP2_HEADERS: self.control_frames_ = 0; break;
      case NGHTTP2_DATA:
        if (frame.hd.length > 0 || (frame.hd.flags & NGHTTP2_FLAG_END_STREAM)) self.control_frames_ = 0;
        else control = true;  // an empty DATA frame carries nothing (CVE-2019-9518)
        break;
      case NGHTTP2_PING:
      case NGHTTP2_SETTINGS: control = !(frame.hd.flags & NGHTTP2_FLAG_ACK); break;
      case NGHTTP2_PRIORITY:
      case NGHTTP2_WINDOW_UPDATE: control = true; break;
      case NGHTTP2_RST_STREAM:
        ++self.resets_received_;
        self.count(Http2Event::reset_received);
        break;
      case NGHTTP2_GOAWAY: self.count(Http2Event::goaway_received); break;
      default: break;
    }
    // Frames that cost work and move no request along: a peer may send a few
    // between two of its requests or our DATA frames, not thousands (the
    // 2019 ping, settings, reset and empty-frame floods).
    if (control && ++self.control_frames_ > kControlFrameBudget && !self.abuse_counted_) {
      self.count(Http2Event::control_flood);
      self.abuse_counted_ = true;
      nghttp2_session_terminate_session(self.session_, NGHTTP2_ENHANCE_YOUR_CALM);
      return false;
    }
    return true;
  }

  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    auto& self = session_of(user_data);
    switch (frame->hd.type) {
      case NGHTTP2_DATA: self.control_frames_ = 0; break;
      case NGHTTP2_RST_STREAM: self.count(observability::Http2Event::reset_sent); break;
      case NGHTTP2_GOAWAY:
        if (frame->goaway.error_code == NGHTTP2_NO_ERROR) break;
        self.count(observability::Http2Event::goaway_sent);
        // nghttp2's own limit on resets ends the connection with INTERNAL_ERROR
        // once the client has reset more streams than the burst allows.
        if (!self.abuse_counted_ && frame->goaway.error_code == NGHTTP2_INTERNAL_ERROR &&
            self.resets_received_ >= kResetBurst)
          self.count(observability::Http2Event::rapid_reset);
        else if (!self.abuse_counted_)
          self.count(observability::Http2Event::protocol_error);
        self.abuse_counted_ = true;
        break;
      default: break;
    }
    return 0;
  }

  // nghttp2 ignores a HEADERS frame on a lower stream id than the last one
  // unless it is sure the stream was closed (a late trailer may be fine). One
  // the client never opened is a protocol error (RFC 9113 §5.1.1).
  static int on_begin_frame(nghttp2_session* session, const nghttp2_frame_hd* hd, void* user_data) {
    auto& self = session_of(user_data);
    if (hd->type != NGHTTP2_HEADERS || hd->stream_id <= 0 || hd->stream_id % 2 == 0) return 0;
    if (hd->stream_id > self.last_stream_) {
      if (self.open_streams_ >= self.settings_.http2.max_concurrent_streams)
        self.count(observability::Http2Event::refused_stream);  // nghttp2 refuses it
      self.last_stream_ = hd->stream_id;
      self.opened_.push_back(hd->stream_id);
      if (self.opened_.size() > kRememberedStreams) self.opened_.pop_front();
      return 0;
    }
    // opened_ holds every id opened until it is full; after that, only the
    // ids above its oldest can be judged.
    const bool judged = self.opened_.size() < kRememberedStreams || hd->stream_id > self.opened_.front();
    const bool known = std::find(self.opened_.begin(), self.opened_.end(), hd->stream_id) != self.opened_.end();
    if (judged && !known)
      nghttp2_session_terminate_session(session, NGHTTP2_PROTOCOL_ERROR);
    return 0;
  }

  static int on_error(nghttp2_session*, int, const char* msg, std::size_t len, void*) {
    spdlog::debug("http2: {}", std::string_view(msg, len));
    return 0;
  }
};

Http2Session::Http2Session(net::Stream& stream, Buffer& input, ConnectionHost& host, Http2Peer peer)
    : Http2Transport(stream, std::move(input)),
      host_(host),
      peer_(peer),
      settings_(host.settings()),
      exchanges_done_(stream.get_executor()),
      idle_since_(Clock::now()),
      stats_(host.listener_stats().http2) {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &Callbacks::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &Callbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Callbacks::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Callbacks::on_stream_close);
  nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, &Callbacks::on_begin_frame);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &Callbacks::on_frame_send);
  nghttp2_session_callbacks_set_error_callback2(cbs, [](nghttp2_session* s, int code, const char* msg,
                                                        std::size_t len, void* u) {
    return Callbacks::on_error(s, code, msg, len, u);
  });
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // The window opens as the router takes the bytes, not as they arrive.
  nghttp2_option_set_no_auto_window_update(opt, 1);
  // Abuse limits nghttp2 enforces itself: rapid resets (CVE-2023-44487),
  // CONTINUATION floods, SETTINGS floods, ACKs a peer never reads.
  nghttp2_option_set_stream_reset_rate_limit(opt, kResetBurst, kResetsPerSecond);
  nghttp2_option_set_max_continuations(opt, 8);
  nghttp2_option_set_max_settings(opt, 32);
  nghttp2_option_set_max_outbound_ack(opt, 1000);
  // Memory per connection: responses are encoded without a dynamic table
  // (HAProxy's choice too: repeated response fields are few and short).
  // Closed streams stay known to nghttp2: frames on them are connection
  // errors (RFC 9113 §5.1), which h2spec checks.
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, 0);
  nghttp2_session_server_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);

  const auto& h2 = settings_.http2;
  const nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, h2.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, h2.initial_stream_window_size},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, h2.max_header_list_size},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},  // WebSocket over HTTP/2 (RFC 8441)
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, std::size(iv));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<std::int32_t>(h2.initial_connection_window_size));
  stats_.connections_total.inc();
  stats_.connections_active.add(1);
}

Http2Session::~Http2Session() {
  streams_.clear();
  nghttp2_session_del(session_);
  stats_.connections_active.add(-1);
}

void Http2Session::count(observability::Http2Event e) { stats_.count(e); }


asio::awaitable<void> Http2Session::run() {
  using namespace asio::experimental::awaitable_operators;
  co_await (read_loop() && write_loop());
  // The connection is gone: what is still running ends at its next step.
  closing_ = true;
  for (auto& [id, s] : streams_) s->on_connection_lost();
  while (exchanges_ > 0) co_await exchanges_done_.wait();
}

bool Http2Session::final_goaway(Clock::time_point now) {
  // The drain's second step, once the notice had time to reach the client.
  if (!drain_sent_ || goaway_final_ || now - drain_at_ < kGoawayAfterNotice) return false;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
  goaway_final_ = true;
  return true;
}

void Http2Session::bytes_written() { final_goaway(Clock::now()); }

void Http2Session::end_writes() {
  // The client may still send: the reader sees the end when the socket goes.
  boost::system::error_code ec;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  stream_.socket().cancel(ec);
}

void Http2Session::fail(int error) {
  using observability::Http2Event;
  spdlog::debug("http2: closing the connection: {}", nghttp2_strerror(error));
  if (!abuse_counted_) {
    abuse_counted_ = true;
    switch (error) {
      case NGHTTP2_ERR_FLOODED: count(Http2Event::outbound_flood); break;
      case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS: count(Http2Event::continuation_flood); break;
      case NGHTTP2_ERR_TOO_MANY_SETTINGS: count(Http2Event::control_flood); break;
      default: count(Http2Event::protocol_error); break;
    }
  }
  closing_ = true;
}

void Http2Session::drain() {
  if (drain_sent_) return;
  drain_sent_ = true;
  drain_at_ = Clock::now();
  nghttp2_submit_shutdown_notice(session_);
  wake_writer();
}

void Http2Session::sweep(Clock::time_point now) {
  if (final_goaway(now)) wake_writer();
  if (open_streams_ == 0 && now - idle_since_ >= settings_.idle_timeout) drain();
  if (now - writing_since_ >= settings_.idle_timeout && !closing_) {
    // The client takes no bytes at all: TCP's window is shut, and no frame
    // of ours (not even GOAWAY) can reach it.
    count(observability::Http2Event::write_timeout);
    closing_ = true;
    boost::system::error_code ec;
    stream_.socket().close(ec);
    return;
  }
  if (open_streams_ == 0) return;
  bool reset = false;
  for (auto& [id, s] : streams_) {
    if (s->closed() || !s->stalled_on_client() || now - s->last_activity() < settings_.idle_timeout) continue;
    // A stream that waits for its client (a window that stays shut, a body
    // that stopped coming) for the idle timeout is reset.
    count(observability::Http2Event::stream_idle_timeout);
    s->touch();
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    reset = true;
  }
  if (reset) wake_writer();
}

void Http2Session::start_exchange(Http2Stream& s) {
  if (closing_) return;
  ++exchanges_;
  asio::co_spawn(stream_.get_executor(), s.serve(host_.current_handler()), asio::detached);
}

void Http2Session::exchange_ended(Http2Stream& s) {
  --exchanges_;
  if (s.closed()) {
    forget(s);
  } else if (!closing_ && !s.response_complete()) {
    // The response broke off: the client must not take what it got for all of it.
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id(), NGHTTP2_INTERNAL_ERROR);
    wake_writer();
  } else if (!closing_ && !s.remote_ended()) {
    s.discard_rest(settings_.http2.initial_stream_window_size);
  }
  if (exchanges_ == 0) exchanges_done_.notify();
}

void Http2Session::stream_closed(Http2Stream& s, std::uint32_t error_code) {
  --open_streams_;
  if (open_streams_ == 0) idle_since_ = Clock::now();
  nghttp2_session_set_stream_user_data(session_, s.id(), nullptr);
  const auto unread = s.on_closed(error_code);
  if (unread > 0) nghttp2_session_consume_connection(session_, unread);
  if (!s.exchange_running()) forget(s);
}

void Http2Session::forget(Http2Stream& s) {
  if (closing_) return;  // ~Http2Session clears them all
  streams_.erase(s.id());
}

}  // namespace outrigger::http
