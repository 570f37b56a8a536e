#include "outrigger/config/config.hpp"

#include "outrigger/config/loader.hpp"

namespace outrigger::config {

const Cluster* Config::find_cluster(std::string_view name) const {
  for (const auto& c : clusters)
    if (c.name == name) return &c;
  return nullptr;
}

std::string Diagnostic::to_string() const {
  return file + ":" + std::to_string(mark.line) + ":" + std::to_string(mark.column) + ": " + message;
}

namespace {
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}
}  // namespace

unsigned retry_on_bit(std::string_view name) {
  static constexpr std::pair<std::string_view, RetryOn> kOn[] = {{"5xx", retry_5xx},
                                                                  {"gateway-error", retry_gateway_error},
                                                                  {"reset", retry_reset},
                                                                  {"connect-failure", retry_connect_failure},
                                                                  {"retriable-status-codes", retry_retriable_status_codes},
                                                                  {"cancelled", retry_grpc_cancelled},
                                                                  {"deadline-exceeded", retry_grpc_deadline_exceeded},
                                                                  {"resource-exhausted", retry_grpc_resource_exhausted},
                                                                  {"internal", retry_grpc_internal},
                                                                  {"unavailable", retry_grpc_unavailable}};
  for (const auto& [n, bit] : kOn)
    if (n == name) return bit;
  return 0;
}

std::string closest_match(std::string_view word, const std::vector<std::string_view>& candidates) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (auto c : candidates) {
    const auto d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = std::string(c);
    }
  }
  return best;
}

}  // namespace outrigger::config
