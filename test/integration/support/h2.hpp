// HTTP/2 peers for the tests, on nghttp2 over blocking loopback sockets: a
// client (h2c by prior knowledge) that can also write raw frames for the
// abuse tests, and a scriptable upstream server. Both run their session on
// the caller's thread (the client) or one thread per connection (the server).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

struct nghttp2_session;
struct nghttp2_hd_deflater;
struct nghttp2_hd_inflater;

namespace testing_support {

using namespace std::chrono_literals;
using Fields = std::vector<std::pair<std::string, std::string>>;

struct H2Response {
  int status = 0;
  Fields headers, trailers;
  std::string body;
  bool complete = false;       // END_STREAM seen
  std::uint32_t reset = 0;     // RST_STREAM's error code, when reset
  bool was_reset = false;
  std::string header(const std::string& name) const;   // "" when absent
  std::string trailer(const std::string& name) const;
};

class H2Client {
 public:
  struct Options {
    std::uint32_t initial_window = 65535;  // our SETTINGS_INITIAL_WINDOW_SIZE
    bool manual_window = false;            // only open_window() gives the server more room
  };
  explicit H2Client(std::uint16_t port) : H2Client(port, Options{}) {}
  H2Client(std::uint16_t port, Options options);
  ~H2Client();
  H2Client(const H2Client&) = delete;
  H2Client& operator=(const H2Client&) = delete;

  bool connected() const { return fd_ >= 0; }

  // Submits a request; its stream id. `body` absent: HEADERS ends the stream.
  std::int32_t submit(const std::string& method, const std::string& path, const Fields& headers = {},
                      std::optional<std::string> body = std::nullopt, const Fields& trailers = {},
                      const std::string& authority = "test.local");
  // Serves the session until stream `id` closes; nullopt at the deadline.
  std::optional<H2Response> wait(std::int32_t id, std::chrono::milliseconds timeout = 5s);
  std::optional<H2Response> get(const std::string& path, const Fields& headers = {},
                                std::chrono::milliseconds timeout = 5s);
  // Serves the session until pred() holds or the deadline; pred's last answer.
  bool run_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 5s);
  const H2Response& response(std::int32_t id) { return responses_[id]; }

  void reset_stream(std::int32_t id, std::uint32_t error_code = 8 /* CANCEL */);
  void ping();
  // Gives the server `bytes` more room on stream `id` (manual_window).
  void open_window(std::int32_t id, std::size_t bytes);

  // The server's GOAWAY, if it sent one.
  std::optional<std::pair<std::int32_t, std::uint32_t>> goaway() const { return goaway_; }
  // The server closed the connection.
  bool closed() const { return closed_; }
  std::size_t pings_acked() const { return pings_acked_; }
  std::uint32_t server_max_concurrent_streams() const;

 private:
  struct Callbacks;
  bool flush();
  bool pump(std::chrono::milliseconds wait);  // one read; false when the connection ended

  int fd_ = -1;
  nghttp2_session* session_ = nullptr;
  Options options_;
  std::map<std::int32_t, H2Response> responses_;
  std::map<std::int32_t, std::shared_ptr<std::string>> bodies_;  // request bodies in flight
  std::map<std::int32_t, Fields> trailers_;                      // request trailers to send after the body
  std::optional<std::pair<std::int32_t, std::uint32_t>> goaway_;
  std::size_t pings_acked_ = 0;
  bool closed_ = false;
};

// Raw HTTP/2 frames for the abuse tests (the framing itself is nghttp2's
// job in the proxy; a test needs to write frames no library would).
std::string h2_frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream, const std::string& payload);
// A header block, HPACK-encoded by nghttp2's deflater.
std::string h2_header_block(const Fields& fields);
inline constexpr const char* kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// A client that writes frames by hand and reads back the server's frame
// headers: for the frames a well-behaved library would never send.
class RawH2 {
 public:
  struct Frame {
    std::uint8_t type = 0, flags = 0;
    std::uint32_t stream = 0;
    std::string payload;
    std::uint32_t error_code() const;  // RST_STREAM's, or GOAWAY's
  };
  // Connects, sends the preface and SETTINGS (these entries: id, value).
  explicit RawH2(std::uint16_t port, const std::vector<std::pair<std::uint16_t, std::uint32_t>>& settings = {});
  ~RawH2();
  bool send(const std::string& bytes);
  // The next frame; nullopt at the deadline or when the server closed.
  std::optional<Frame> next(std::chrono::milliseconds timeout = 3s);
  // Frames until one of `type` (on `stream`, unless 0xffffffff); nullopt if none came.
  std::optional<Frame> until(std::uint8_t type, std::chrono::milliseconds timeout = 3s,
                             std::uint32_t stream = 0xffffffff);
  bool closed() const { return closed_; }
  // A HEADERS frame's fields (END_HEADERS set, no padding or priority), with
  // this connection's HPACK state: call it on every HEADERS frame, in order.
  Fields decode(const Frame& headers);
  // Reads until the server closes; true when it did within the deadline.
  bool closed_by_peer(std::chrono::milliseconds timeout = 3s);
  // Stops reading the socket (the zero-window peer): nothing is drained.
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::string in_;
  bool closed_ = false;
  nghttp2_hd_inflater* inflater_ = nullptr;
};
enum : std::uint8_t { kData = 0, kHeaders = 1, kPriority = 2, kRstStream = 3, kSettings = 4, kPing = 6,
                      kGoaway = 7, kWindowUpdate = 8, kContinuation = 9 };
enum : std::uint8_t { kEndStream = 1, kAck = 1, kEndHeaders = 4 };

// An HTTP/2 upstream on 127.0.0.1:0 (h2c, prior knowledge): one thread per
// connection, a handler per request once its END_STREAM arrives.
class H2Upstream {
 public:
  struct Request {
    Fields headers;  // pseudo-headers first, as received
    Fields trailers;
    std::string body;
    int connection = 0;  // which connection (1, 2, ... in accept order)
    std::string header(const std::string& name) const;
  };
  struct Reply {
    int status = 200;
    Fields headers;
    std::string body;
    Fields trailers;                       // sent after the body (a HEADERS frame with END_STREAM)
    std::chrono::milliseconds delay{0};    // held this long before the response goes
    std::optional<std::uint32_t> reset;    // RST_STREAM with this code instead of a response
  };
  using Handler = std::function<Reply(const Request&)>;
  struct Options {
    std::uint32_t max_concurrent_streams = 100;
    bool ack_pings = true;
    // After this many requests on a connection: GOAWAY (NO_ERROR) naming the
    // last stream processed; streams above it are never processed (nor
    // counted), and the connection closes once the rest are answered.
    int goaway_after = 0;
  };

  explicit H2Upstream(Handler handler = nullptr) : H2Upstream(Options{}, std::move(handler)) {}
  H2Upstream(Options options, Handler handler);
  ~H2Upstream();
  std::uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }
  int requests() const { return requests_.load(); }
  int max_concurrent() const { return max_concurrent_.load(); }  // most streams open at once on one connection
  int pings() const { return pings_.load(); }
  Request last_request() const;
  std::vector<Request> requests_seen() const;
  static Reply echo(const Request& r);  // 200, the method, path and body size, and the request's trailers

 private:
  struct Connection;
  void accept_loop();
  void serve(int fd, int id);

  Options options_;
  Handler handler_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0}, requests_{0}, max_concurrent_{0}, pings_{0};
  mutable std::mutex mutex_;
  std::vector<Request> seen_;
  std::thread acceptor_;
  std::vector<std::thread> threads_;
};

}  // namespace testing_support
