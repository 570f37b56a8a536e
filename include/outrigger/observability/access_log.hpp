// The access log: one line per downstream exchange, JSON lines or a text
// format with %FIELD% placeholders. Lines are formatted on the worker into a
// reused buffer and written by spdlog's async logger, off the request path.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>

#include "outrigger/config/config.hpp"
#include "outrigger/observability/exchange_record.hpp"

namespace outrigger::observability {

// Everything a line can show. Views point into the exchange; they are only
// read during AccessLog::write.
struct AccessLogEntry {
  std::chrono::system_clock::time_point start_time;
  std::chrono::microseconds duration{0};
  std::string_view method;
  std::string_view path;       // the request target as received
  std::string_view protocol;   // "HTTP/1.1"
  int response_code = 0;       // 0: no response was sent
  int grpc_status = -1;        // a gRPC response's grpc-status; -1: none (not gRPC, or no status)
  std::string_view error;      // x-outrigger-error reason, empty when none
  std::uint64_t bytes_received = 0;  // request body bytes
  std::uint64_t bytes_sent = 0;      // response body bytes
  std::string_view forwarded_for;
  std::string_view user_agent;
  std::string_view request_id;
  std::string_view authority;
  std::string_view upstream_host;  // "127.0.0.1:8080", empty when none
  std::string_view route;
  std::string_view cluster;
  std::string_view listener;
  std::string_view downstream_address;  // client "ip:port"
  std::string_view trace_id;  // the exchange's trace and SERVER span, empty when not traced
  std::string_view span_id;
  std::string_view peer_identity;  // the client's mTLS identity, empty without one
};

class AccessLog {
 public:
  // Returns null when the config disables the access log. Throws
  // std::runtime_error when the path cannot be opened or the text format has an
  // unknown %FIELD% (the message names it).
  static std::shared_ptr<AccessLog> create(const config::AccessLog& config);

  // Checks a text format without opening anything: "" when valid, else the reason.
  static std::string validate_format(std::string_view text_format);

  virtual ~AccessLog() = default;

  // Thread-safe; called by workers once per exchange.
  virtual void write(const AccessLogEntry& entry) = 0;
  virtual void flush() = 0;
};

// The line of one exchange (its request header as it went upstream).
void log_exchange(AccessLog& log, const ExchangeRecord& record, const RequestHeader& request,
                  std::chrono::microseconds elapsed);

}  // namespace outrigger::observability
