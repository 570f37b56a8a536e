#include "outrigger/observability/tracing.hpp"

#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/ip/address_v6.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/json.hpp>
#include <cctype>
#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace outrigger::observability {

namespace bhttp = boost::beast::http;
namespace json = boost::json;

namespace {

// Lower-case hex of exactly 16 characters; none on anything else.
std::optional<std::uint64_t> parse_hex64(std::string_view s) {
  if (s.size() != 16) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    v <<= 4;
    if (c >= '0' && c <= '9') {
      v |= static_cast<std::uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      v |= static_cast<std::uint64_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      v |= static_cast<std::uint64_t>(c - 'A' + 10);
    } else {
      return std::nullopt;
    }
  }
  return v;
}

// A trace id of 16 or 32 hex characters; all-zero is invalid.
bool parse_trace_id(std::string_view s, TraceContext& ctx) {
  if (s.size() == 32) {
    auto hi = parse_hex64(s.substr(0, 16)), lo = parse_hex64(s.substr(16));
    if (!hi || !lo || (*hi == 0 && *lo == 0)) return false;
    ctx.trace_high = *hi;
    ctx.trace_low = *lo;
    ctx.trace_128 = true;
    return true;
  }
  auto lo = parse_hex64(s);
  if (!lo || *lo == 0) return false;
  ctx.trace_high = 0;
  ctx.trace_low = *lo;
  ctx.trace_128 = false;
  return true;
}

std::optional<bool> parse_sampled(std::string_view s) {
  if (s == "1" || boost::beast::iequals(s, "true") || s == "d") return true;
  if (s == "0" || boost::beast::iequals(s, "false")) return false;
  return std::nullopt;
}

// The propagation headers of a request, found in one pass over its fields.
struct Carriers {
  std::string_view traceid, spanid, parentspanid, sampled, flags, b3, traceparent, tracestate;
  bool any = false;

  explicit Carriers(const core::HttpFields& f) {
    for (const auto& field : f) {
      const auto name = field.name_string();
      if (name.size() < 2) continue;
      std::string_view* slot = nullptr;
      switch (name.size()) {
        case 2: slot = boost::beast::iequals(name, "b3") ? &b3 : nullptr; break;
        case 10: slot = boost::beast::iequals(name, "x-b3-flags") ? &flags : boost::beast::iequals(name, "tracestate") ? &tracestate : nullptr; break;
        case 11: slot = boost::beast::iequals(name, "x-b3-spanid") ? &spanid : boost::beast::iequals(name, "traceparent") ? &traceparent : nullptr; break;
        case 12: slot = boost::beast::iequals(name, "x-b3-traceid") ? &traceid : boost::beast::iequals(name, "x-b3-sampled") ? &sampled : nullptr; break;
        case 17: slot = boost::beast::iequals(name, "x-b3-parentspanid") ? &parentspanid : nullptr; break;
        default: break;
      }
      if (slot && slot->empty()) {
        *slot = field.value();
        any = true;
      }
    }
  }
};

std::optional<TraceContext> extract_b3(const Carriers& f) {
  TraceContext ctx;
  ctx.format = config::Propagation::b3;
  const std::string_view trace = f.traceid, span = f.spanid;
  const std::string_view sampled = f.sampled, flags = f.flags;
  ctx.debug = flags == "1";
  if (ctx.debug) {
    ctx.sampled = true;
  } else if (!sampled.empty()) {
    ctx.sampled = parse_sampled(sampled);
  }
  if (trace.empty() && span.empty()) {
    if (!ctx.sampled) return std::nullopt;
    return ctx;  // a decision alone
  }
  auto span_id = parse_hex64(span);
  if (!parse_trace_id(trace, ctx) || !span_id || *span_id == 0) return std::nullopt;
  ctx.span_id = *span_id;
  if (const std::string_view parent = f.parentspanid; !parent.empty()) {
    if (auto p = parse_hex64(parent)) ctx.parent_id = *p;
  }
  return ctx;
}

// b3: {trace}-{span}[-{sampled}[-{parent}]], or only {sampled}.
std::optional<TraceContext> extract_b3_single(const Carriers& f) {
  std::string_view v = f.b3;
  if (v.empty()) return std::nullopt;
  TraceContext ctx;
  ctx.format = config::Propagation::b3_single;
  std::string_view parts[4];
  std::size_t n = 0;
  for (; n < 4 && !v.empty(); ++n) {
    const auto dash = v.find('-');
    parts[n] = v.substr(0, dash);
    v = dash == std::string_view::npos ? std::string_view{} : v.substr(dash + 1);
  }
  if (!v.empty()) return std::nullopt;
  if (n == 1) {  // a decision alone
    ctx.sampled = parse_sampled(parts[0]);
    ctx.debug = parts[0] == "d";
    if (!ctx.sampled) return std::nullopt;
    return ctx;
  }
  auto span_id = parse_hex64(parts[1]);
  if (!parse_trace_id(parts[0], ctx) || !span_id || *span_id == 0) return std::nullopt;
  ctx.span_id = *span_id;
  if (n >= 3) {
    ctx.sampled = parse_sampled(parts[2]);
    ctx.debug = parts[2] == "d";
    if (!ctx.sampled) return std::nullopt;
  }
  if (n == 4) {
    auto parent = parse_hex64(parts[3]);
    if (!parent) return std::nullopt;
    ctx.parent_id = *parent;
  }
  return ctx;
}

// traceparent: 00-{32 hex trace}-{16 hex parent}-{2 hex flags}
std::optional<TraceContext> extract_w3c(const Carriers& f) {
  const std::string_view v = f.traceparent;
  if (v.size() < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  const auto version = v.substr(0, 2);
  if (version == "ff" || (version == "00" && v.size() != 55)) return std::nullopt;
  TraceContext ctx;
  ctx.format = config::Propagation::w3c;
  auto span_id = parse_hex64(v.substr(36, 16));
  if (v.substr(3, 32).size() != 32 || !parse_trace_id(v.substr(3, 32), ctx) || !span_id || *span_id == 0)
    return std::nullopt;
  ctx.span_id = *span_id;
  unsigned flags = 0;
  const auto fl = v.substr(53, 2);
  if (std::from_chars(fl.data(), fl.data() + 2, flags, 16).ptr != fl.data() + 2) return std::nullopt;
  ctx.sampled = (flags & 1) != 0;
  ctx.tracestate = std::string(f.tracestate);
  return ctx;
}

void put_hex(char* out, std::uint64_t v) {
  static constexpr char digits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i) {
    out[i] = digits[v & 0xf];
    v >>= 4;
  }
}

}  // namespace

HexId hex_id(std::uint64_t id) {
  HexId h;
  put_hex(h.data.data(), id);
  h.size = 16;
  return h;
}

HexId hex_trace_id(std::uint64_t high, std::uint64_t low, bool wide) {
  HexId h;
  if (wide) put_hex(h.data.data(), high);
  put_hex(h.data.data() + (wide ? 16 : 0), low);
  h.size = wide ? 32 : 16;
  return h;
}

std::optional<TraceContext> extract(const core::HttpFields& fields, const std::vector<config::Propagation>& formats,
                                    bool* carriers) {
  const Carriers f(fields);
  if (carriers) *carriers = f.any;
  if (!f.any) return std::nullopt;
  for (auto format : formats) {
    std::optional<TraceContext> ctx;
    switch (format) {
      case config::Propagation::b3:
        ctx = extract_b3(f);
        break;
      case config::Propagation::b3_single:
        ctx = extract_b3_single(f);
        break;
      case config::Propagation::w3c:
        ctx = extract_w3c(f);
        break;
    }
    if (ctx) return ctx;
  }
  return std::nullopt;
}

void inject(core::HttpFields& f, const TraceContext& ctx, std::uint64_t span_id, std::uint64_t parent_id,
            config::Propagation format, bool fresh) {
  // set() looks for the old value first, erase() looks at all: with none there, insert() is enough.
  const auto put = [&](std::string_view name, std::string_view value) {
    if (fresh) {
      f.insert(name, value);
    } else {
      f.set(name, value);
    }
  };
  const auto drop = [&](std::string_view name) {
    if (!fresh) f.erase(name);
  };
  const bool sampled = ctx.sampled.value_or(false);
  const auto trace_hex = hex_trace_id(ctx);
  const auto trace_sv = trace_hex.view();
  char span[16], parent[16];
  put_hex(span, span_id);
  put_hex(parent, parent_id);
  switch (format) {
    case config::Propagation::b3:
      put("x-b3-traceid", trace_sv);
      put("x-b3-spanid", std::string_view(span, 16));
      if (parent_id) {
        put("x-b3-parentspanid", std::string_view(parent, 16));
      } else {
        drop("x-b3-parentspanid");
      }
      if (ctx.debug) {
        put("x-b3-flags", "1");
        drop("x-b3-sampled");
      } else {
        put("x-b3-sampled", sampled ? "1" : "0");
        drop("x-b3-flags");
      }
      break;
    case config::Propagation::b3_single: {
      char v[32 + 1 + 16 + 2 + 17];  // {trace}-{span}-{decision}[-{parent}], in place
      char* p = std::copy(trace_sv.begin(), trace_sv.end(), v);
      *p++ = '-';
      p = std::copy_n(span, 16, p);
      *p++ = '-';
      *p++ = ctx.debug ? 'd' : sampled ? '1' : '0';
      if (parent_id) {
        *p++ = '-';
        p = std::copy_n(parent, 16, p);
      }
      put("b3", std::string_view(v, static_cast<std::size_t>(p - v)));
      break;
    }
    case config::Propagation::w3c: {
      // traceparent has 128-bit trace ids: a 64-bit one is left-padded with zeros.
      const auto wide = hex_trace_id(ctx.trace_high, ctx.trace_low, true);  // trace_high is 0 for 64-bit ids
      char tp[55];
      std::memcpy(tp, "00-", 3);
      std::memcpy(tp + 3, wide.data.data(), 32);
      tp[35] = '-';
      std::memcpy(tp + 36, span, 16);
      std::memcpy(tp + 52, sampled || ctx.debug ? "-01" : "-00", 3);
      put("traceparent", std::string_view(tp, sizeof tp));
      if (!ctx.tracestate.empty()) put("tracestate", ctx.tracestate);
      break;
    }
  }
}

void set_remote(Span& span, const boost::asio::ip::address& ip, std::uint16_t port) {
  span.has_remote = true;
  span.remote_port = port;
  if (ip.is_v6() && !ip.to_v6().is_v4_mapped()) {
    const auto b = ip.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), span.remote_ip.begin());
    span.remote_v6 = true;
  } else {
    const auto b = ip.is_v6() ? boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, ip.to_v6()).to_bytes()
                              : ip.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), span.remote_ip.begin());
    span.remote_v6 = false;
  }
}

SpanQueue::SpanQueue(std::size_t capacity) : slots_(new Span[capacity]), capacity_(capacity) {}

bool SpanQueue::push(const Span& span) {
  const auto tail = tail_.load(std::memory_order_relaxed);
  if (tail - head_.load(std::memory_order_acquire) >= capacity_) return false;
  slots_[tail % capacity_] = span;
  tail_.store(tail + 1, std::memory_order_release);
  return true;
}

std::size_t SpanQueue::drain(std::vector<Span>& out, std::size_t max) {
  auto head = head_.load(std::memory_order_relaxed);
  const auto tail = tail_.load(std::memory_order_acquire);
  std::size_t n = 0;
  for (; head != tail && n < max; ++head, ++n) out.push_back(slots_[head % capacity_]);
  head_.store(head, std::memory_order_release);
  return n;
}

SpanQueues::SpanQueues(unsigned workers, std::size_t capacity, TracingCounters& c)
    : capacity_per_worker(capacity), counters(c) {
  for (unsigned i = 0; i < workers; ++i) queues.push_back(std::make_unique<SpanQueue>(capacity));
}

WorkerTracer::WorkerTracer(const config::Tracing& config, SpanQueues& queues, unsigned worker, std::uint64_t seed)
    : config_(config), queues_(queues), queue_(*queues.queues[worker]), random_(seed) {}

std::uint64_t WorkerTracer::next_id() {
  for (;;) {
    if (auto id = random_.next()) return id;
  }
}

bool WorkerTracer::sample() {
  if (config_.sample_rate >= 1.0) return true;
  if (config_.sample_rate <= 0.0) return false;
  return static_cast<double>(random_.next() >> 11) * 0x1.0p-53 < config_.sample_rate;
}

void WorkerTracer::record(const Span& span) {
  if (!queue_.push(span)) queues_.counters.dropped_queue_full.fetch_add(1, std::memory_order_relaxed);
}

namespace {

json::object endpoint(const Span& s, const json::storage_ptr& sp) {
  json::object e(sp);
  char text[INET6_ADDRSTRLEN];  // formatted in place, no std::string
  if (::inet_ntop(s.remote_v6 ? AF_INET6 : AF_INET, s.remote_ip.data(), text, sizeof text))
    e.emplace(s.remote_v6 ? "ipv6" : "ipv4", std::string_view(text));
  if (s.remote_port) e.emplace("port", s.remote_port);
  return e;
}

}  // namespace

SpanEncoder::SpanEncoder() = default;
SpanEncoder::~SpanEncoder() = default;

std::string_view SpanEncoder::encode(const std::vector<Span>& spans, std::string_view service_name) {
  // One arena per batch, its first block kept: no allocation per JSON node,
  // and none at all once the block has grown to a batch's size.
  constexpr std::size_t kPerSpan = 2048;
  if (arena_size_ < spans.size() * kPerSpan) {
    arena_size_ = spans.size() * kPerSpan;
    arena_ = std::make_unique<unsigned char[]>(arena_size_);
  }
  json::monotonic_resource arena(arena_.get(), arena_size_);
  json::storage_ptr sp(&arena);
  json::array out(sp);
  out.reserve(spans.size());
  for (const auto& s : spans) {
    json::object& o = out.emplace_back(json::object(sp)).as_object();
    o.reserve(10);
    o.emplace("traceId", hex_trace_id(s.trace_high, s.trace_low, s.trace_128).view());
    o.emplace("id", hex_id(s.id).view());
    if (s.parent_id) o.emplace("parentId", hex_id(s.parent_id).view());
    o.emplace("kind", s.server ? "SERVER" : "CLIENT");
    char name[16];
    const auto method = s.method.view();
    for (std::size_t i = 0; i < method.size(); ++i)
      name[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(method[i])));
    o.emplace("name", std::string_view(name, method.size()));
    o.emplace("timestamp", s.timestamp_us);
    o.emplace("duration", std::max<std::int64_t>(1, s.duration_us));
    if (s.debug) o.emplace("debug", true);
    o.emplace("localEndpoint", json::object({{"serviceName", service_name}}, sp));
    if (s.has_remote) o.emplace("remoteEndpoint", endpoint(s, sp));
    json::object& tags = o.emplace("tags", json::object(sp)).first->value().as_object();
    tags.reserve(11);
    char status[12], attempt[12], grpc[12];
    const auto number = [](char* buf, std::size_t n, auto v) {
      return std::string_view(buf, static_cast<std::size_t>(std::to_chars(buf, buf + n, v).ptr - buf));
    };
    tags.emplace("http.method", method);
    tags.emplace("http.path", s.path.view());
    if (s.status) tags.emplace("http.status_code", number(status, sizeof status, s.status));
    if (s.server) tags.emplace("outrigger.protocol", s.http2 ? "http2" : "http1");
    if (s.grpc_status >= 0) tags.emplace("grpc.status_code", number(grpc, sizeof grpc, s.grpc_status));
    if (!s.route.view().empty()) tags.emplace("outrigger.route", s.route.view());
    if (!s.cluster.view().empty()) tags.emplace("outrigger.cluster", s.cluster.view());
    if (!s.peer_identity.view().empty()) tags.emplace("peer.identity", s.peer_identity.view());
    if (!s.server) tags.emplace("outrigger.attempt", number(attempt, sizeof attempt, s.attempt));
    if (!s.error.view().empty()) {
      tags.emplace("outrigger.error", s.error.view());
      tags.emplace("error", s.error.view());
    } else if (s.status >= 500 || s.status == 0) {
      tags.emplace("error", s.status ? number(status, sizeof status, s.status) : std::string_view("no response"));
    }
  }
  json::serializer sr;
  sr.reset(&out);
  text_.clear();
  char chunk[16384];
  while (!sr.done()) text_.append(sr.read(chunk, sizeof chunk));
  return text_;
}

std::string encode_spans(const std::vector<Span>& spans, std::string_view service_name) {
  SpanEncoder encoder;
  return std::string(encoder.encode(spans, service_name));
}

}  // namespace outrigger::observability
