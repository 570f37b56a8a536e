// An opaque TCP connection through the proxy (`protocol: tcp`, detection's
// verdict, TLS passthrough, an unknown original destination): the client's
// bytes go to an endpoint of a cluster (balanced, connect failures retried
// on other endpoints and counted by outlier detection, within the cluster's
// max_connections; TLS to it when the cluster has `tls`, except for TLS
// passed through) or to the original destination itself, and back, until
// both sides are done (net/tunnel.hpp). A `protocol: tcp` listener with
// `tls` terminates it first (mTLS between two Outriggers). The listener's
// rbac filters decide by peer identity and source address. One access-log
// line per connection, when it closes.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>

#include "outrigger/http/connection_host.hpp"
#include "outrigger/net/stream.hpp"
#include "outrigger/server/inspector.hpp"

namespace outrigger::server {

class Pipeline;

// The access-log line of a connection the inspector refused (verdict.refused).
void log_refused(const Pipeline& pipeline, const Verdict& verdict, const boost::asio::ip::tcp::socket& client);

class TcpSession final : public http::ClientConnection {
 public:
  TcpSession(boost::asio::ip::tcp::socket socket, std::shared_ptr<Pipeline> pipeline, Verdict verdict,
             http::ConnectionHost& host);
  // On a connection the HTTP codec accepted (TLS done: ALPN "outrigger-tcp"),
  // which stays its owner's; `identity` is the client's.
  TcpSession(net::Stream& client, std::shared_ptr<Pipeline> pipeline, Verdict verdict, std::string identity);
  ~TcpSession();
  // Runs until both sides are done; the session owns itself meanwhile.
  static void run(std::unique_ptr<TcpSession> session);
  // Until both sides are done (what run() spawns).
  boost::asio::awaitable<void> serve();

  void sweep(Clock::time_point, Clock::duration) override {}
  void close_if_idle() override {}  // a tunnel has no idle moment: it runs until drain_timeout
  void close_now() override;

 private:
  // The client's TLS, on a `protocol: tcp` listener with `tls`.
  boost::asio::awaitable<bool> terminate_tls();
  // A connection to the target; false when none could be made (error_ says why).
  boost::asio::awaitable<bool> connect();
  void log(Clock::time_point start, std::chrono::system_clock::time_point start_wall, std::uint64_t received,
           std::uint64_t sent);

  std::unique_ptr<net::Stream> owned_;  // the client connection, when this session owns it
  net::Stream& client_;
  std::shared_ptr<Pipeline> pipeline_;
  Verdict verdict_;
  http::ConnectionHost* host_ = nullptr;  // the owner's, when this session owns the connection
  std::unique_ptr<class UpstreamSide> upstream_;
  std::string client_ip_;
  std::string identity_;        // the client's mTLS identity
  std::string upstream_host_;
  std::string_view error_;      // why it ended early, for the access log
  bool closed_ = false;
};

}  // namespace outrigger::server
