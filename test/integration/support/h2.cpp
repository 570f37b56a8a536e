#include "support/h2.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "support/net.hpp"

namespace testing_support {

namespace {

using Clock = std::chrono::steady_clock;

std::string lookup(const Fields& fields, const std::string& name) {
  for (const auto& [k, v] : fields)
    if (k == name) return v;
  return {};
}

nghttp2_nv nv(const std::string& name, const std::string& value) {
  return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

std::vector<nghttp2_nv> nvs(const Fields& fields) {
  std::vector<nghttp2_nv> out;
  for (const auto& [k, v] : fields) out.push_back(nv(k, v));
  return out;
}

bool send_all(int fd, const std::uint8_t* data, std::size_t n) {
  while (n > 0) {
    const auto k = ::send(fd, data, n, MSG_NOSIGNAL);
    if (k <= 0) return false;
    data += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

// What a data provider reads from: a body, and the trailers that follow it.
struct Outgoing {
  std::string body;
  std::size_t offset = 0;
  Fields trailers;
};

ssize_t read_outgoing(nghttp2_session* session, std::int32_t stream_id, std::uint8_t* buf, std::size_t length,
                      std::uint32_t* flags, nghttp2_data_source* source, void*) {
  auto& out = *static_cast<Outgoing*>(source->ptr);
  const auto n = std::min(length, out.body.size() - out.offset);
  std::memcpy(buf, out.body.data() + out.offset, n);
  out.offset += n;
  if (out.offset == out.body.size()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!out.trailers.empty()) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      auto t = nvs(out.trailers);
      nghttp2_submit_trailer(session, stream_id, t.data(), t.size());
    }
  }
  return static_cast<ssize_t>(n);
}

}  // namespace

std::string H2Response::header(const std::string& name) const { return lookup(headers, name); }
std::string H2Response::trailer(const std::string& name) const { return lookup(trailers, name); }
std::string H2Upstream::Request::header(const std::string& name) const { return lookup(headers, name); }

// ---- client ----

struct H2Client::Callbacks {
  static H2Client& self(void* u) { return *static_cast<H2Client*>(u); }
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name, std::size_t namelen,
                       const std::uint8_t* value, std::size_t valuelen, std::uint8_t, void* u) {
    auto& r = self(u).responses_[frame->hd.stream_id];
    std::string n(reinterpret_cast<const char*>(name), namelen), v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") {
      r.status = std::stoi(v);
      if (r.status >= 200) r.headers.clear();  // a final response after 1xx
      return 0;
    }
    if (frame->headers.cat == NGHTTP2_HCAT_HEADERS && r.status >= 200) {
      r.trailers.emplace_back(std::move(n), std::move(v));
    } else {
      r.headers.emplace_back(std::move(n), std::move(v));
    }
    return 0;
  }
  static int on_data(nghttp2_session* session, std::uint8_t, std::int32_t id, const std::uint8_t* data, std::size_t len,
                     void* u) {
    auto& c = self(u);
    c.responses_[id].body.append(reinterpret_cast<const char*>(data), len);
    if (c.options_.manual_window) nghttp2_session_consume_connection(session, len);
    return 0;
  }
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* u) {
    auto& c = self(u);
    if (frame->hd.type == NGHTTP2_GOAWAY) c.goaway_ = {{frame->goaway.last_stream_id, frame->goaway.error_code}};
    if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK)) ++c.pings_acked_;
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
      c.responses_[frame->hd.stream_id].complete = true;
    return 0;
  }
  static int on_close(nghttp2_session*, std::int32_t id, std::uint32_t code, void* u) {
    auto& c = self(u);
    auto& r = c.responses_[id];
    if (code != NGHTTP2_NO_ERROR || !r.complete) {
      r.was_reset = true;
      r.reset = code;
    }
    c.bodies_.erase(id);
    c.trailers_.erase(id);
    return 0;
  }
};

H2Client::H2Client(std::uint16_t port, Options options) : options_(options) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd_);
    fd_ = -1;
    return;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &Callbacks::on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Callbacks::on_data);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Callbacks::on_close);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  if (options_.manual_window) nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_session_client_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  const nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, options_.initial_window},
                                       {NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, 2);
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, 16 << 20);
  flush();
}

H2Client::~H2Client() {
  if (session_) nghttp2_session_del(session_);
  if (fd_ >= 0) ::close(fd_);
}

std::int32_t H2Client::submit(const std::string& method, const std::string& path, const Fields& headers,
                              std::optional<std::string> body, const Fields& trailers, const std::string& authority) {
  Fields all{{":method", method}, {":scheme", "http"}, {":authority", authority}, {":path", path}};
  all.insert(all.end(), headers.begin(), headers.end());
  auto nva = nvs(all);
  std::int32_t id = 0;
  if (body) {
    auto out = std::make_shared<Outgoing>(Outgoing{std::move(*body), 0, trailers});
    nghttp2_data_provider provider{};
    provider.source.ptr = out.get();
    provider.read_callback = read_outgoing;
    id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), &provider, nullptr);
    if (id > 0) bodies_[id] = std::shared_ptr<std::string>(out, &out->body);
  } else {
    id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), nullptr, nullptr);
  }
  responses_[id];
  flush();
  return id;
}

bool H2Client::flush() {
  if (fd_ < 0) return false;
  for (;;) {
    const std::uint8_t* data = nullptr;
    const auto n = nghttp2_session_mem_send(session_, &data);
    if (n <= 0) return n == 0;
    if (!send_all(fd_, data, static_cast<std::size_t>(n))) return false;
  }
}

bool H2Client::pump(std::chrono::milliseconds wait) {
  if (fd_ < 0 || closed_) return false;
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(wait.count(), 0))) <= 0) return true;
  std::uint8_t buf[16384];
  const auto n = ::recv(fd_, buf, sizeof buf, 0);
  if (n <= 0) {
    closed_ = true;
    return false;
  }
  if (nghttp2_session_mem_recv(session_, buf, static_cast<std::size_t>(n)) < 0) {
    closed_ = true;
    return false;
  }
  flush();
  return true;
}

bool H2Client::run_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    flush();
    if (pred()) return true;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return pred();
    if (!pump(std::min(left, std::chrono::milliseconds(50))) && closed_) return pred();
  }
}

std::optional<H2Response> H2Client::wait(std::int32_t id, std::chrono::milliseconds timeout) {
  auto done = [&] {
    auto* stream = nghttp2_session_find_stream(session_, id);
    return id > 0 && responses_.count(id) && (stream == nullptr || closed_);
  };
  if (!run_until(done, timeout) || (closed_ && !responses_[id].complete && !responses_[id].was_reset)) return std::nullopt;
  return responses_[id];
}

std::optional<H2Response> H2Client::get(const std::string& path, const Fields& headers,
                                        std::chrono::milliseconds timeout) {
  return wait(submit("GET", path, headers), timeout);
}

void H2Client::reset_stream(std::int32_t id, std::uint32_t error_code) {
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, error_code);
  flush();
}

void H2Client::ping() {
  nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
  flush();
}

void H2Client::open_window(std::int32_t id, std::size_t bytes) {
  nghttp2_submit_window_update(session_, NGHTTP2_FLAG_NONE, id, static_cast<std::int32_t>(bytes));
  flush();
}

RawH2::RawH2(std::uint16_t port, const std::vector<std::pair<std::uint16_t, std::uint32_t>>& settings) {
  nghttp2_hd_inflate_new(&inflater_);
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd_);
    fd_ = -1;
    closed_ = true;
    return;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::string entries;
  for (const auto& [id, value] : settings) {
    const char e[6] = {static_cast<char>(id >> 8), static_cast<char>(id & 0xff), static_cast<char>(value >> 24),
                       static_cast<char>((value >> 16) & 0xff), static_cast<char>((value >> 8) & 0xff),
                       static_cast<char>(value & 0xff)};
    entries.append(e, 6);
  }
  send(std::string(kH2Preface) + h2_frame(kSettings, 0, 0, entries));
}

RawH2::~RawH2() {
  nghttp2_hd_inflate_del(inflater_);
  if (fd_ >= 0) ::close(fd_);
}

Fields RawH2::decode(const Frame& headers) {
  Fields out;
  auto* in = reinterpret_cast<std::uint8_t*>(const_cast<char*>(headers.payload.data()));
  std::size_t left = headers.payload.size();
  for (;;) {
    nghttp2_nv nv{};
    int flags = 0;
    const auto n = nghttp2_hd_inflate_hd2(inflater_, &nv, &flags, in, left, 1);
    if (n < 0) break;
    in += n;
    left -= static_cast<std::size_t>(n);
    if (flags & NGHTTP2_HD_INFLATE_EMIT)
      out.emplace_back(std::string(reinterpret_cast<char*>(nv.name), nv.namelen),
                       std::string(reinterpret_cast<char*>(nv.value), nv.valuelen));
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(inflater_);
      break;
    }
    if (n == 0 && left == 0) break;
  }
  return out;
}

bool RawH2::send(const std::string& bytes) {
  return fd_ >= 0 && send_all(fd_, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
}

std::uint32_t RawH2::Frame::error_code() const {
  const std::size_t at = type == kGoaway ? 4 : 0;
  if (payload.size() < at + 4) return 0xffffffff;
  const auto* p = reinterpret_cast<const unsigned char*>(payload.data()) + at;
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

std::optional<RawH2::Frame> RawH2::next(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (in_.size() >= 9) {
      const auto* h = reinterpret_cast<const unsigned char*>(in_.data());
      const std::size_t len = (std::size_t{h[0]} << 16) | (std::size_t{h[1]} << 8) | h[2];
      if (in_.size() >= 9 + len) {
        Frame f{h[3], h[4],
                ((std::uint32_t{h[5]} & 0x7f) << 24) | (std::uint32_t{h[6]} << 16) | (std::uint32_t{h[7]} << 8) | h[8],
                in_.substr(9, len)};
        in_.erase(0, 9 + len);
        return f;
      }
    }
    if (closed_) return std::nullopt;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[16384];
    const auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      closed_ = true;
      continue;
    }
    in_.append(buf, static_cast<std::size_t>(n));
  }
}

std::optional<RawH2::Frame> RawH2::until(std::uint8_t type, std::chrono::milliseconds timeout, std::uint32_t stream) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto f = next(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    if (!f) return std::nullopt;
    if (f->type == type && (stream == 0xffffffff || f->stream == stream)) return f;
  }
  return std::nullopt;
}

bool RawH2::closed_by_peer(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!closed_ && Clock::now() < deadline)
    next(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
  return closed_;
}

std::uint32_t H2Client::server_max_concurrent_streams() const {
  return nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

std::string h2_frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream, const std::string& payload) {
  std::string f(9, '\0');
  const auto len = payload.size();
  f[0] = static_cast<char>((len >> 16) & 0xff);
  f[1] = static_cast<char>((len >> 8) & 0xff);
  f[2] = static_cast<char>(len & 0xff);
  f[3] = static_cast<char>(type);
  f[4] = static_cast<char>(flags);
  f[5] = static_cast<char>((stream >> 24) & 0x7f);
  f[6] = static_cast<char>((stream >> 16) & 0xff);
  f[7] = static_cast<char>((stream >> 8) & 0xff);
  f[8] = static_cast<char>(stream & 0xff);
  return f + payload;
}

std::string h2_header_block(const Fields& fields) {
  nghttp2_hd_deflater* deflater = nullptr;
  nghttp2_hd_deflate_new(&deflater, 4096);
  auto nva = nvs(fields);
  std::string out(nghttp2_hd_deflate_bound(deflater, nva.data(), nva.size()), '\0');
  const auto n = nghttp2_hd_deflate_hd(deflater, reinterpret_cast<std::uint8_t*>(out.data()), out.size(), nva.data(),
                                       nva.size());
  nghttp2_hd_deflate_del(deflater);
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

// ---- upstream ----

struct H2Upstream::Connection {
  H2Upstream& owner;
  int id;
  nghttp2_session* session = nullptr;
  std::map<std::int32_t, Request> requests;
  struct Due {
    Clock::time_point at;
    std::int32_t stream;
    Reply reply;
  };
  std::vector<Due> due;
  std::map<std::int32_t, std::unique_ptr<Outgoing>> outgoing;
  int handled = 0;
  int open = 0;
  bool goaway_sent = false;
  std::int32_t goaway_last = 0;

  static Connection& self(void* u) { return *static_cast<Connection*>(u); }
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* u) {
    auto& c = self(u);
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      c.requests[frame->hd.stream_id].connection = c.id;
      ++c.open;
      int seen = c.owner.max_concurrent_.load();
      while (c.open > seen && !c.owner.max_concurrent_.compare_exchange_weak(seen, c.open)) {
      }
    }
    return 0;
  }
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name, std::size_t namelen,
                       const std::uint8_t* value, std::size_t valuelen, std::uint8_t, void* u) {
    auto& r = self(u).requests[frame->hd.stream_id];
    std::string n(reinterpret_cast<const char*>(name), namelen), v(reinterpret_cast<const char*>(value), valuelen);
    (frame->headers.cat == NGHTTP2_HCAT_REQUEST ? r.headers : r.trailers).emplace_back(std::move(n), std::move(v));
    return 0;
  }
  static int on_data(nghttp2_session*, std::uint8_t, std::int32_t id, const std::uint8_t* data, std::size_t len,
                     void* u) {
    self(u).requests[id].body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* u) {
    auto& c = self(u);
    if (frame->hd.type == NGHTTP2_PING && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) ++c.owner.pings_;
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && c.requests.count(frame->hd.stream_id))
      c.handle(frame->hd.stream_id);
    return 0;
  }
  static int on_close(nghttp2_session*, std::int32_t id, std::uint32_t, void* u) {
    auto& c = self(u);
    if (c.requests.erase(id)) --c.open;
    c.outgoing.erase(id);
    return 0;
  }

  void handle(std::int32_t stream) {
    if (goaway_sent && stream > goaway_last) return;  // after the GOAWAY: never processed
    const Request& r = requests[stream];
    {
      std::lock_guard lock(owner.mutex_);
      owner.seen_.push_back(r);
    }
    ++owner.requests_;
    Reply reply = owner.handler_ ? owner.handler_(r) : echo(r);
    due.push_back({Clock::now() + reply.delay, stream, std::move(reply)});
    ++handled;
    if (owner.options_.goaway_after > 0 && handled >= owner.options_.goaway_after && !goaway_sent) {
      nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE, stream, NGHTTP2_NO_ERROR, nullptr, 0);
      goaway_sent = true;
      goaway_last = stream;
    }
  }

  void send_due() {
    const auto now = Clock::now();
    for (auto it = due.begin(); it != due.end();) {
      if (it->at > now) {
        ++it;
        continue;
      }
      auto& reply = it->reply;
      if (reply.reset) {
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, it->stream, *reply.reset);
      } else {
        Fields all{{":status", std::to_string(reply.status)}};
        all.insert(all.end(), reply.headers.begin(), reply.headers.end());
        auto nva = nvs(all);
        if (reply.body.empty() && reply.trailers.empty()) {
          nghttp2_submit_response(session, it->stream, nva.data(), nva.size(), nullptr);
        } else {
          auto& out = outgoing[it->stream] = std::make_unique<Outgoing>(Outgoing{reply.body, 0, reply.trailers});
          nghttp2_data_provider provider{};
          provider.source.ptr = out.get();
          provider.read_callback = read_outgoing;
          nghttp2_submit_response(session, it->stream, nva.data(), nva.size(), &provider);
        }
      }
      it = due.erase(it);
    }
  }
};

H2Upstream::H2Upstream(Options options, Handler handler) : options_(options), handler_(std::move(handler)) {
  listen_fd_ = listen_loopback(port_, 128);
  acceptor_ = std::thread([this] { accept_loop(); });
}

H2Upstream::~H2Upstream() {
  stopping_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  acceptor_.join();
  ::close(listen_fd_);
  for (auto& t : threads_) t.join();
}

void H2Upstream::accept_loop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    const int id = ++connections_;
    threads_.emplace_back([this, fd, id] { serve(fd, id); });
  }
}

void H2Upstream::serve(int fd, int id) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  Connection c{*this, id};
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &Connection::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &Connection::on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Connection::on_data);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Connection::on_frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Connection::on_close);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  if (!options_.ack_pings) nghttp2_option_set_no_auto_ping_ack(opt, 1);
  nghttp2_session_server_new2(&c.session, cbs, &c, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  const nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, options_.max_concurrent_streams}};
  nghttp2_submit_settings(c.session, NGHTTP2_FLAG_NONE, iv, 1);

  auto flush = [&] {
    for (;;) {
      const std::uint8_t* data = nullptr;
      const auto n = nghttp2_session_mem_send(c.session, &data);
      if (n <= 0) return n == 0;
      if (!send_all(fd, data, static_cast<std::size_t>(n))) return false;
    }
  };
  while (!stopping_ && flush()) {
    c.send_due();
    if (!flush()) break;
    if (c.goaway_sent && c.due.empty() && !nghttp2_session_want_write(c.session)) break;
    if (!nghttp2_session_want_read(c.session) && !nghttp2_session_want_write(c.session)) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, c.due.empty() ? 50 : 5) <= 0) continue;
    std::uint8_t buf[16384];
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    if (nghttp2_session_mem_recv(c.session, buf, static_cast<std::size_t>(n)) < 0) break;
  }
  nghttp2_session_del(c.session);
  ::close(fd);
}

H2Upstream::Request H2Upstream::last_request() const {
  std::lock_guard lock(mutex_);
  return seen_.empty() ? Request{} : seen_.back();
}

std::vector<H2Upstream::Request> H2Upstream::requests_seen() const {
  std::lock_guard lock(mutex_);
  return seen_;
}

H2Upstream::Reply H2Upstream::echo(const Request& r) {
  Reply reply;
  reply.headers = {{"content-type", "text/plain"}};
  reply.body = r.header(":method") + " " + r.header(":path") + " " + std::to_string(r.body.size()) + "\n";
  reply.trailers = r.trailers;
  return reply;
}

}  // namespace testing_support
