#include "outrigger/observability/access_log.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/async.h>
#include <spdlog/async_logger.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <array>
#include <atomic>
#include <boost/json/serializer.hpp>
#include <boost/json/value.hpp>
#include <stdexcept>
#include <variant>
#include <vector>

namespace outrigger::observability {

namespace {

enum class Field {
  start_time,
  duration_ms,
  method,
  path,
  protocol,
  response_code,
  grpc_status,
  error,
  bytes_received,
  bytes_sent,
  forwarded_for,
  user_agent,
  request_id,
  authority,
  upstream_host,
  route,
  cluster,
  listener,
  downstream_address,
  trace_id,
  span_id,
  peer_identity,
};

struct FieldName {
  std::string_view placeholder;  // text format, without the %
  std::string_view json_key;
  Field field;
};

constexpr std::array<FieldName, 22> kFields{{
    {"START_TIME", "start_time", Field::start_time},
    {"DURATION_MS", "duration_ms", Field::duration_ms},
    {"METHOD", "method", Field::method},
    {"PATH", "path", Field::path},
    {"PROTOCOL", "protocol", Field::protocol},
    {"RESPONSE_CODE", "response_code", Field::response_code},
    {"GRPC_STATUS", "grpc_status", Field::grpc_status},
    {"ERROR", "error", Field::error},
    {"BYTES_RECEIVED", "bytes_received", Field::bytes_received},
    {"BYTES_SENT", "bytes_sent", Field::bytes_sent},
    {"FORWARDED_FOR", "forwarded_for", Field::forwarded_for},
    {"USER_AGENT", "user_agent", Field::user_agent},
    {"REQUEST_ID", "request_id", Field::request_id},
    {"AUTHORITY", "authority", Field::authority},
    {"UPSTREAM_HOST", "upstream_host", Field::upstream_host},
    {"ROUTE", "route", Field::route},
    {"CLUSTER", "cluster", Field::cluster},
    {"LISTENER", "listener", Field::listener},
    {"DOWNSTREAM_ADDRESS", "downstream_address", Field::downstream_address},
    {"TRACE_ID", "trace_id", Field::trace_id},
    {"SPAN_ID", "span_id", Field::span_id},
    {"PEER_IDENTITY", "peer_identity", Field::peer_identity},
}};

std::string_view text_of(const AccessLogEntry& e, Field f) {
  switch (f) {
    case Field::method: return e.method;
    case Field::path: return e.path;
    case Field::protocol: return e.protocol;
    case Field::error: return e.error;
    case Field::forwarded_for: return e.forwarded_for;
    case Field::user_agent: return e.user_agent;
    case Field::request_id: return e.request_id;
    case Field::authority: return e.authority;
    case Field::upstream_host: return e.upstream_host;
    case Field::route: return e.route;
    case Field::cluster: return e.cluster;
    case Field::listener: return e.listener;
    case Field::downstream_address: return e.downstream_address;
    case Field::trace_id: return e.trace_id;
    case Field::span_id: return e.span_id;
    case Field::peer_identity: return e.peer_identity;
    default: return {};
  }
}

// RFC 3339 UTC with milliseconds: 2026-11-24T23:01:02.345Z
void append_time(fmt::memory_buffer& out, std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  fmt::format_to(std::back_inserter(out), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
}

double duration_ms(const AccessLogEntry& e) { return static_cast<double>(e.duration.count()) / 1000.0; }

// A text format compiled once: literal pieces and fields, in order.
using Segment = std::variant<std::string, Field>;

std::vector<Segment> compile(std::string_view format, std::string* error) {
  std::vector<Segment> out;
  std::string literal;
  for (std::size_t i = 0; i < format.size();) {
    if (format[i] != '%') {
      literal += format[i++];
      continue;
    }
    if (i + 1 < format.size() && format[i + 1] == '%') {
      literal += '%';
      i += 2;
      continue;
    }
    const auto end = format.find('%', i + 1);
    if (end == std::string_view::npos) {
      if (error) *error = fmt::format("unterminated access log field at offset {}", i);
      return {};
    }
    const auto name = format.substr(i + 1, end - i - 1);
    const auto it = std::find_if(kFields.begin(), kFields.end(), [&](const auto& f) { return f.placeholder == name; });
    if (it == kFields.end()) {
      if (error) *error = fmt::format("unknown access log field %{}% at offset {}", name, i);
      return {};
    }
    if (!literal.empty()) out.emplace_back(std::move(literal));
    literal.clear();
    out.emplace_back(it->field);
    i = end + 1;
  }
  if (!literal.empty()) out.emplace_back(std::move(literal));
  return out;
}

std::atomic<unsigned> logger_count{0};

class SpdlogAccessLog final : public AccessLog {
 public:
  SpdlogAccessLog(const config::AccessLog& config, std::vector<Segment> segments)
      : json_(config.format == config::AccessLogFormat::json), segments_(std::move(segments)) {
    spdlog::sink_ptr sink;
    if (config.path == "stdout") {
      sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    } else if (config.path == "stderr") {
      sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    } else {
      try {
        sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(config.path, false);
      } catch (const spdlog::spdlog_ex& e) {
        throw std::runtime_error("cannot open access log " + config.path + ": " + e.what());
      }
    }
    sink->set_pattern("%v");
    // Its own queue and thread, not registered globally, so that a reload can
    // create the next access log while this one still drains.
    pool_ = std::make_shared<spdlog::details::thread_pool>(8192, 1);
    logger_ = std::make_shared<spdlog::async_logger>("access_log_" + std::to_string(logger_count++), sink, pool_,
                                                     spdlog::async_overflow_policy::overrun_oldest);
    logger_->set_level(spdlog::level::info);
  }

  ~SpdlogAccessLog() override {
    logger_->flush();
    // The thread first (it writes what is queued, then is joined), the logger and
    // its sink after: the sink is never destroyed while that thread may still
    // flush it (ThreadSanitizer saw the other order race, Tracing.*AccessLog*).
    pool_.reset();
    logger_.reset();
  }

  void write(const AccessLogEntry& e) override {
    thread_local fmt::memory_buffer line;
    line.clear();
    if (json_) {
      format_json(e, line);
    } else {
      format_text(e, line);
    }
    logger_->log(spdlog::level::info, std::string_view(line.data(), line.size()));
  }

  void flush() override { logger_->flush(); }

 private:
  void format_text(const AccessLogEntry& e, fmt::memory_buffer& out) const {
    auto it = std::back_inserter(out);
    for (const auto& s : segments_) {
      if (const auto* lit = std::get_if<std::string>(&s)) {
        out.append(*lit);
        continue;
      }
      switch (const Field f = std::get<Field>(s)) {
        case Field::start_time: append_time(out, e.start_time); break;
        case Field::duration_ms: fmt::format_to(it, "{:.3f}", duration_ms(e)); break;
        case Field::response_code:
          if (e.response_code) {
            fmt::format_to(it, "{}", e.response_code);
          } else {
            out.push_back('-');
          }
          break;
        case Field::grpc_status:
          if (e.grpc_status >= 0) {
            fmt::format_to(it, "{}", e.grpc_status);
          } else {
            out.push_back('-');
          }
          break;
        case Field::bytes_received: fmt::format_to(it, "{}", e.bytes_received); break;
        case Field::bytes_sent: fmt::format_to(it, "{}", e.bytes_sent); break;
        default: {
          const auto v = text_of(e, f);
          if (v.empty()) {
            out.push_back('-');
          } else {
            out.append(v);
          }
        }
      }
    }
  }

  static void format_json(const AccessLogEntry& e, fmt::memory_buffer& out) {
    fmt::memory_buffer time;
    append_time(time, e.start_time);
    boost::json::object o;
    o.reserve(kFields.size());
    for (const auto& f : kFields) {
      switch (f.field) {
        case Field::start_time: o.emplace(f.json_key, std::string_view(time.data(), time.size())); break;
        case Field::duration_ms: o.emplace(f.json_key, duration_ms(e)); break;
        case Field::response_code: o.emplace(f.json_key, e.response_code); break;
        case Field::grpc_status:
          if (e.grpc_status >= 0) o.emplace(f.json_key, e.grpc_status);  // only for gRPC
          break;
        case Field::bytes_received: o.emplace(f.json_key, e.bytes_received); break;
        case Field::bytes_sent: o.emplace(f.json_key, e.bytes_sent); break;
        default: o.emplace(f.json_key, text_of(e, f.field));
      }
    }
    boost::json::serializer sr;
    sr.reset(&o);
    char buf[4096];
    while (!sr.done()) out.append(sr.read(buf));
  }

  bool json_;
  std::vector<Segment> segments_;
  std::shared_ptr<spdlog::details::thread_pool> pool_;
  std::shared_ptr<spdlog::async_logger> logger_;
};

}  // namespace

std::string AccessLog::validate_format(std::string_view text_format) {
  std::string error;
  compile(text_format, &error);
  return error;
}

std::shared_ptr<AccessLog> AccessLog::create(const config::AccessLog& config) {
  if (!config.enabled) return nullptr;
  std::vector<Segment> segments;
  if (config.format == config::AccessLogFormat::text) {
    std::string error;
    segments = compile(config.text_format, &error);
    if (!error.empty()) throw std::runtime_error(error);
  }
  return std::make_shared<SpdlogAccessLog>(config, std::move(segments));
}

}  // namespace outrigger::observability
