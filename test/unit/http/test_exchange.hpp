// Exchanges for filter unit tests: a request, a Downstream that records the
// local reply it is asked to write, and a harness that builds a filter from
// YAML as a config load does and runs it (its coroutine driven to the end
// on a private io_context).
#pragma once

#include <yaml-cpp/yaml.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "outrigger/config/yaml_reader.hpp"
#include "outrigger/http/filter.hpp"
#include "outrigger/observability/stats.hpp"

namespace outrigger::http::testing {

class NullDownstream final : public Downstream {
 public:
  awaitable<BodyRead> read_body(char*, std::size_t) override { co_return BodyRead{StreamError::none, 0, true}; }
  bool request_body_done() const override { return true; }
  awaitable<StreamError> write_response(ResponseMessage&, const Fields*) override {
    started = true;
    co_return StreamError::none;
  }
  awaitable<StreamError> write_local_reply(ResponseHeader& header, std::string_view body) override {
    started = true;
    local_status = header.result_int();
    local_header = header;
    local_body = body;
    co_return StreamError::none;
  }
  bool response_started() const override { return started; }
  void arm_deadline(std::chrono::steady_clock::time_point) override {}
  void disarm_deadline() override {}

  bool started = false;
  int local_status = 0;
  ResponseHeader local_header;
  std::string local_body;
};

// A request `method target` from `ip`, as an exchange.
struct TestExchange {
  TestExchange(boost::beast::http::verb method, std::string_view target, std::string_view ip = "10.1.2.3")
      : ip_(ip) {
    request.method(method);
    request.target(target);
    request.version(11);
    request.set(boost::beast::http::field::host, "example");
  }
  Exchange& get() {
    if (!ex) ex.emplace(request, down, std::chrono::steady_clock::now(), std::chrono::system_clock::now(), ip_);
    return *ex;
  }
  RequestMessage request;
  NullDownstream down;
  std::string ip_;
  std::optional<Exchange> ex;
};

// Runs an awaitable to its end; returns its value.
template <class T>
T run(awaitable<T> a) {
  boost::asio::io_context io;
  std::optional<T> out;
  std::exception_ptr error;
  boost::asio::co_spawn(io, std::move(a), [&](std::exception_ptr e, T v) {
    error = e;
    if (!e) out.emplace(std::move(v));
  });
  io.run();
  if (error) std::rethrow_exception(error);
  return std::move(*out);
}
inline void run(awaitable<void> a) {
  boost::asio::io_context io;
  std::exception_ptr error;
  boost::asio::co_spawn(io, std::move(a), [&](std::exception_ptr e) { error = e; });
  io.run();
  if (error) std::rethrow_exception(error);
}

// One filter of the registry, made from YAML for listener "ingress"
// (inbound) as worker 0 of `workers`.
struct FilterHarness {
  explicit FilterHarness(const std::string& yaml, unsigned workers = 1) : stats(workers) {
    auto node = YAML::Load(yaml);
    config::FilterSpec spec{node["type"].as<std::string>(""), std::make_shared<const YAML::Node>(node), {1, 1}};
    config::YamlReader reader(file, errors);
    factory = make_filter_factory(spec, {"filters[0]", "ingress", "inbound", &stats, workers}, reader);
    if (factory) filter = factory->make_filter(0);
  }
  // Made with a given maker (a factory function with extra arguments, say).
  FilterHarness(const std::string& yaml, const FilterFactoryMaker& make) : stats(1) {
    auto node = YAML::Load(yaml);
    config::FilterSpec spec{node["type"].as<std::string>(""), std::make_shared<const YAML::Node>(node), {1, 1}};
    config::YamlReader reader(file, errors);
    factory = make(spec, {"filters[0]", "ingress", "inbound", &stats, 1}, reader);
    if (factory) filter = factory->make_filter(0);
  }
  // What the filter decides about a request.
  FilterResult on_request(Exchange& ex) { return run(filter->on_request(ex)); }
  // The status a request gets: 0 when it passes.
  int status(Exchange& ex) {
    auto r = on_request(ex);
    return r ? r->status : 0;
  }
  // "LINE:COLUMN: message" lines.
  std::string error_text() const {
    std::string out;
    for (const auto& e : errors)
      out += std::to_string(e.mark.line) + ":" + std::to_string(e.mark.column) + ": " + e.message + "\n";
    return out;
  }
  std::uint64_t count(std::string_view family, const std::vector<std::string>& labels) const {
    return stats.counter_value(family, labels);
  }

  std::string file = "test.yaml";
  std::vector<config::Diagnostic> errors;
  observability::Stats stats;
  std::unique_ptr<FilterFactory> factory;
  std::unique_ptr<Filter> filter;
};

}  // namespace outrigger::http::testing
