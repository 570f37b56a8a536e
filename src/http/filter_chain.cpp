#include "outrigger/http/filter.hpp"
#include "outrigger/http/grpc.hpp"

namespace outrigger::http {

FilterChain::FilterChain(std::vector<std::unique_ptr<Filter>> filters) : filters_(std::move(filters)) {
  for (const auto& f : filters_) observes_bodies_ = observes_bodies_ || f->observes_bodies();
}

awaitable<FilterResult> FilterChain::on_request(Exchange& ex) {
  ex.filters = this;
  for (std::size_t i = 0; i < filters_.size(); ++i) {
    ++ex.filters_ran;
    if (skipped(ex, i)) continue;
    if (auto reply = co_await filters_[i]->on_request(ex)) co_return reply;
  }
  co_return std::nullopt;
}

void FilterChain::on_response(Exchange& ex, ResponseHeader& response) {
  for (std::size_t i = std::min(ex.filters_ran, filters_.size()); i-- > 0;)
    if (!skipped(ex, i)) filters_[i]->on_response(ex, response);
}

void FilterChain::on_request_body(Exchange& ex, std::span<const char> data, bool end) {
  for (std::size_t i = 0; i < std::min(ex.filters_ran, filters_.size()); ++i)
    if (filters_[i]->observes_bodies() && !skipped(ex, i)) filters_[i]->on_request_body(ex, data, end);
}

void FilterChain::on_response_body(Exchange& ex, std::span<const char> data, bool end) {
  for (std::size_t i = std::min(ex.filters_ran, filters_.size()); i-- > 0;)
    if (filters_[i]->observes_bodies() && !skipped(ex, i)) filters_[i]->on_response_body(ex, data, end);
}

awaitable<void> send_local_reply(Exchange& ex, const LocalReply& reply) {
  namespace bhttp = boost::beast::http;
  ex.error_reason = reply.reason;
  if (reply.close) ex.close_connection = true;
  if (ex.downstream.response_started()) {
    ex.close_connection = true;  // too late for a reply: the client sees a truncated response
    co_return;
  }
  if (ex.error == ProxyError::downstream_reset) {  // nobody to answer
    ex.error_reason = to_string(ex.error);
    ex.status = 0;
    ex.close_connection = true;
    co_return;
  }
  ResponseHeader header;
  header.result(static_cast<unsigned>(reply.status));
  header.version(11);
  std::string_view body = reply.body;
  if ((ex.grpc && reply.reason_header && !reply.reason.empty()) || reply.grpc_status >= 0) {
    // The proxy's own answer to a gRPC client is a gRPC error (trailers-only:
    // HTTP 200, grpc-status and grpc-message in the header), never a page of text.
    const auto code =
        reply.grpc_status >= 0 ? reply.grpc_status : static_cast<int>(grpc_status_for_http(reply.status));
    header.result(bhttp::status::ok);
    header.set(bhttp::field::content_type, "application/grpc");
    header.set("grpc-status", std::to_string(code));
    header.set("grpc-message", grpc_message_encode(reply.body));
    ex.grpc_status = code;
    body = {};
  } else {
    header.set(bhttp::field::content_type, reply.content_type);
  }
  if (!reply.reason.empty() && reply.reason_header) header.set("x-outrigger-error", reply.reason);
  for (const auto& h : reply.headers) header.set(h.name, h.value);
  if (!reply.extra.name.empty()) header.set(reply.extra.name, reply.extra.value);
  if (ex.filters) ex.filters->on_response(ex, header);
  const int status = header.result_int();
  const auto error = co_await ex.downstream.write_local_reply(header, body);
  if (error != StreamError::none) {
    ex.status = 0;
    ex.close_connection = true;
    co_return;
  }
  ex.status = status;
  const bool has_body = status >= 200 && status != 204 && status != 304 && ex.request.method() != bhttp::verb::head;
  if (has_body) ex.bytes_sent += body.size();
}

}  // namespace outrigger::http
