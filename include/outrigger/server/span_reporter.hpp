// Sends the workers' spans to the Zipkin collector. Every flush_interval the
// main thread drains the per-worker queues into batches of max_batch_spans,
// encodes them as Zipkin v2 JSON and POSTs them to collector_path on an
// endpoint of the collector cluster (round robin, the cluster's
// connect_timeout, one keep-alive connection, one batch at a time). A batch
// that fails (connect error, timeout, non-2xx) is dropped and counted; the
// rest stay queued for the next flush, so a slow or absent collector costs
// spans, never requests, and reporting resumes when it is back.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>

#include "outrigger/server/snapshot.hpp"

namespace outrigger::server {

class SpanReporter {
 public:
  using CurrentSnapshot = std::function<std::shared_ptr<const Snapshot>()>;
  SpanReporter(boost::asio::io_context& io, CurrentSnapshot current);
  ~SpanReporter();

  void start();
  // Flushes what is queued once more (bounded by the collector timeouts),
  // then calls done. Main thread.
  void stop(std::function<void()> done);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace outrigger::server
