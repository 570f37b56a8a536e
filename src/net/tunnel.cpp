#include "outrigger/net/tunnel.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>
#include <tuple>
#include <vector>

#include "outrigger/core/buffer_pool.hpp"
#include "outrigger/net/stream.hpp"

namespace outrigger::net {

namespace asio = boost::asio;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

asio::awaitable<std::pair<error_code, std::size_t>> StreamEnd::read(char* buf, std::size_t size) {
  auto [ec, n] = co_await stream_.async_read_some(asio::buffer(buf, size), use_tuple);
  co_return std::pair{ec, n};
}

asio::awaitable<error_code> StreamEnd::write(std::string_view bytes) {
  auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(bytes.data(), bytes.size()), use_tuple);
  co_return ec;
}

asio::awaitable<void> StreamEnd::finish() {
  error_code ec;
  if (auto* tls = stream_.tls()) {
    // TLS's half-close is a close_notify alert, after which the peer may
    // still send (RFC 8446 §6.1). Asio's async_shutdown would also wait to
    // read the peer's, which the other direction is doing: the alert is
    // made here instead, into a memory BIO for the moment, and written to
    // the socket. Nothing else writes to this stream meanwhile (this
    // direction is its only writer), and no Asio operation runs between
    // the two BIO swaps.
    SSL* ssl = tls->native_handle();
    BIO* mem = BIO_new(BIO_s_mem());
    BIO* wbio = SSL_get_wbio(ssl);
    if (!mem || !BIO_up_ref(wbio)) {
      BIO_free(mem);
      co_return;
    }
    SSL_set0_wbio(ssl, mem);  // releases one reference of wbio
    SSL_shutdown(ssl);
    char* data = nullptr;
    const long n = BIO_get_mem_data(mem, &data);
    std::string alert(data, n > 0 ? static_cast<std::size_t>(n) : 0);
    SSL_set0_wbio(ssl, wbio);  // frees mem, keeps our reference
    ERR_clear_error();
    if (!alert.empty()) co_await asio::async_write(stream_.socket(), asio::buffer(alert), asio::redirect_error(asio::use_awaitable, ec));
  }
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
}

asio::ip::tcp::socket* StreamEnd::plain_socket() { return stream_.tls() ? nullptr : &stream_.socket(); }

void StreamEnd::abort() {
  error_code ec;
  stream_.socket().close(ec);
}

namespace {

struct Shared {
  Clock::time_point last = Clock::now();
  bool failed = false;
  int open = 2;  // directions not yet done
};

asio::awaitable<void> pump(TunnelEnd& from, TunnelEnd& to, std::string_view first, std::uint64_t& moved,
                           Shared& s) {
  if (!first.empty()) {
    if (co_await to.write(first)) {
      s.failed = true;
      co_return;
    }
    moved += first.size();
  }
  auto buffer = core::thread_buffer_pool().get();
  for (;;) {
    auto [ec, n] = co_await from.read(buffer.data(), buffer.size());
    if (n > 0) {
      s.last = Clock::now();
      if (co_await to.write({buffer.data(), n})) {
        s.failed = true;
        co_return;
      }
      moved += n;
      s.last = Clock::now();
    }
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
      co_await to.finish();
      co_return;
    }
    if (ec) {
      s.failed = true;
      co_return;
    }
  }
}

// 64 KiB blocks for the plain relay, recycled per thread.
class BlockPool {
 public:
  static constexpr std::size_t kSize = 64 * 1024;
  ~BlockPool() {
    for (char* p : free_) delete[] p;
  }
  char* take() {
    if (free_.empty()) return new char[kSize];
    char* p = free_.back();
    free_.pop_back();
    return p;
  }
  void give(char* p) {
    if (free_.size() < 32) {
      free_.push_back(p);
    } else {
      delete[] p;
    }
  }
  static BlockPool& here() {
    thread_local BlockPool pool;
    return pool;
  }

 private:
  std::vector<char*> free_;
};

// One direction between two plain sockets (see the header).
asio::awaitable<void> pump_plain(asio::ip::tcp::socket& from, asio::ip::tcp::socket& to, std::string_view first,
                                 std::uint64_t& moved, Shared& s) {
  using asio::ip::tcp;
  if (!first.empty()) {
    auto [ec, n] = co_await asio::async_write(to, asio::buffer(first.data(), first.size()), use_tuple);
    if (ec) {
      s.failed = true;
      co_return;
    }
    moved += n;
  }
  error_code ec;
  from.non_blocking(true, ec);
  to.non_blocking(true, ec);
  struct Block {
    char* p = nullptr;
    ~Block() {
      if (p) BlockPool::here().give(p);
    }
  } block;
  for (;;) {
    if (block.p) {
      BlockPool::here().give(block.p);  // idle from here: nothing held
      block.p = nullptr;
    }
    std::tie(ec) = co_await from.async_wait(tcp::socket::wait_read, use_tuple);
    if (ec) {
      s.failed = true;
      co_return;
    }
    block.p = BlockPool::here().take();
    for (;;) {
      const auto n = from.read_some(asio::buffer(block.p, BlockPool::kSize), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;  // drained: wait again
      if (ec == asio::error::eof) {
        to.shutdown(tcp::socket::shutdown_send, ec);
        co_return;
      }
      if (ec) {
        s.failed = true;
        co_return;
      }
      s.last = Clock::now();
      std::size_t done = 0;
      while (done < n) {
        done += to.write_some(asio::buffer(block.p + done, n - done), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) {
          std::tie(ec) = co_await to.async_wait(tcp::socket::wait_write, use_tuple);
        }
        if (ec) {
          s.failed = true;
          co_return;
        }
      }
      moved += n;
      if (n < BlockPool::kSize) break;  // most likely drained: wait rather than read for nothing
    }
  }
}

// Ends the tunnel: when a direction failed, or at the idle timeout.
asio::awaitable<void> pump_then_close(TunnelEnd& from, TunnelEnd& to, std::string_view first, std::uint64_t& moved,
                                      Shared& s) {
  auto* in = from.plain_socket();
  auto* out = to.plain_socket();
  if (in && out) {
    co_await pump_plain(*in, *out, first, moved, s);
  } else {
    co_await pump(from, to, first, moved, s);
  }
  if (s.failed || --s.open == 0) {
    from.abort();
    to.abort();
  }
}

// Both ends are aborted here, so that the directions end too (the operator
// below waits for them).
asio::awaitable<bool> watch_idle(TunnelEnd& a, TunnelEnd& b, Shared& s, std::chrono::milliseconds idle) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    timer.expires_at(s.last + idle);
    auto [ec] = co_await timer.async_wait(use_tuple);
    if (ec) co_return false;  // the tunnel ended first
    if (Clock::now() - s.last >= idle) {
      a.abort();
      b.abort();
      co_return true;
    }
  }
}

}  // namespace

asio::awaitable<TunnelResult> relay(TunnelEnd& a, TunnelEnd& b, std::chrono::milliseconds idle_timeout,
                                    std::string_view to_b, std::string_view to_a) {
  using namespace asio::experimental::awaitable_operators;
  TunnelResult r;
  Shared s;
  auto ended = co_await ((pump_then_close(a, b, to_b, r.a_to_b, s) && pump_then_close(b, a, to_a, r.b_to_a, s)) ||
                         watch_idle(a, b, s, idle_timeout));
  if (ended.index() == 1) {
    r.end = TunnelResult::End::idle_timeout;
  } else if (s.failed) {
    r.end = TunnelResult::End::error;
  }
  co_return r;
}

}  // namespace outrigger::net
