#include "outrigger/observability/exchange_record.hpp"

#include <boost/beast/http/field.hpp>

#include "outrigger/observability/access_log.hpp"

namespace outrigger::observability {

namespace bhttp = boost::beast::http;

namespace {
void fill_common(Span& span, const ExchangeRecord& r, const RequestHeader& request) {
  span.trace_high = r.trace.trace_high;
  span.trace_low = r.trace.trace_low;
  span.trace_128 = r.trace.trace_128;
  span.debug = r.trace.debug;
  span.method.assign(request.method_string());
  span.path.assign(request.target());
  span.route.assign(r.route_name);
}
}  // namespace

Span server_span(const ExchangeRecord& r, const RequestHeader& request, std::chrono::microseconds elapsed) {
  Span span;
  fill_common(span, r, request);
  span.id = r.server_span_id;
  span.parent_id = r.trace.span_id;
  span.server = true;
  span.timestamp_us = epoch_us(r.start_wall);
  span.duration_us = elapsed.count();
  span.status = r.status;
  span.grpc_status = r.grpc_status;
  span.http2 = r.protocol == "HTTP/2";
  span.cluster.assign(r.cluster_name);
  span.error.assign(r.error_reason);
  span.peer_identity.assign(r.peer_identity);
  boost::system::error_code ec;
  const auto ip = boost::asio::ip::make_address(r.downstream_ip, ec);
  if (!ec) set_remote(span, ip, 0);
  return span;
}

Span client_span(const ExchangeRecord& r, const RequestHeader& request, const TryRecord& t,
                 std::chrono::system_clock::time_point end_wall) {
  Span span;
  fill_common(span, r, request);
  span.id = t.span_id;
  span.parent_id = r.server_span_id;
  span.server = false;
  span.timestamp_us = epoch_us(t.start_wall);
  span.duration_us = epoch_us(end_wall) - span.timestamp_us;
  span.status = t.status;
  span.attempt = t.attempt;
  span.cluster.assign(t.cluster);
  span.error.assign(t.error);
  set_remote(span, t.remote_ip, t.remote_port);
  return span;
}

void log_exchange(AccessLog& log, const ExchangeRecord& r, const RequestHeader& req, std::chrono::microseconds elapsed) {
  AccessLogEntry e;
  e.start_time = r.start_wall;
  e.duration = elapsed;
  e.method = req.method_string();
  e.path = req.target();
  e.protocol = r.protocol;
  e.response_code = r.status;
  e.grpc_status = r.grpc_status;
  e.error = r.error_reason;
  e.bytes_received = r.bytes_received;
  e.bytes_sent = r.bytes_sent;
  e.forwarded_for = req["x-forwarded-for"];
  e.user_agent = req[bhttp::field::user_agent];
  e.request_id = req["x-request-id"];
  e.authority = req[bhttp::field::host];
  e.upstream_host = r.upstream_host;
  e.route = r.route_name;
  e.cluster = r.cluster_name;
  e.listener = r.listener;
  e.downstream_address = r.downstream_ip;
  HexId trace_id, span_id;  // in place: no allocation
  if (r.traced) {
    trace_id = hex_trace_id(r.trace);
    span_id = hex_id(r.server_span_id);
    e.trace_id = trace_id.view();
    e.span_id = span_id.view();
  }
  e.peer_identity = r.peer_identity;
  log.write(e);
}

}  // namespace outrigger::observability
