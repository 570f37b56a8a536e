// A real Prometheus scrapes Outrigger: `up` is 1, the counters it stored equal
// the requests sent, and every query of docs/grafana-dashboard.json and every
// example query of docs/metrics.md runs.
// Needs the `prometheus` binary (Debian package `prometheus`); skipped without
// it, except in CI (CI=true), where its absence fails the test.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/net.hpp"

extern char** environ;

namespace {

using namespace testing_support;
namespace json = boost::json;
namespace fs = std::filesystem;

std::string find_prometheus() {
  for (const char* p : {"/usr/bin/prometheus", "/usr/local/bin/prometheus"})
    if (::access(p, X_OK) == 0) return p;
  return {};
}

std::uint16_t free_port() {
  const auto p = closed_port();  // bound, then closed: free for a moment
  return p;
}

std::string url_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// A Prometheus server scraping one target every second, in a temp directory.
class PrometheusServer {
 public:
  PrometheusServer(const std::string& binary, std::uint16_t target_port) {
    dir_ = fs::temp_directory_path() / ("outrigger-prom-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(target_port));
    fs::create_directories(dir_);
    std::ofstream(dir_ / "prometheus.yml") << "global: { scrape_interval: 1s, evaluation_interval: 1s }\n"
                                              "scrape_configs:\n"
                                              "  - job_name: outrigger\n"
                                              "    metrics_path: /metrics\n"
                                              "    static_configs: [{ targets: ['127.0.0.1:"
                                           << target_port << "'] }]\n";
    port_ = free_port();
    const std::string config = "--config.file=" + (dir_ / "prometheus.yml").string();
    const std::string storage = "--storage.tsdb.path=" + (dir_ / "data").string();
    const std::string listen = "--web.listen-address=127.0.0.1:" + std::to_string(port_);
    const std::string log = (dir_ / "prometheus.log").string();
    std::vector<std::string> args{binary, config, storage, listen, "--log.level=warn"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    if (posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }

  ~PrometheusServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      for (int i = 0; i < 100 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (::waitpid(pid_, &status, WNOHANG) == 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
      }
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  bool started() const { return pid_ > 0; }
  std::string log() const {
    std::ifstream in(dir_ / "prometheus.log");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  bool ready() {
    for (int i = 0; i < 300; ++i) {  // at most 15 s
      if (auto r = http_get(port_, "/-/ready"); r && r->result_int() == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  // The result of an instant query; a null value when the request failed.
  json::value query(const std::string& promql) {
    auto r = http_get(port_, "/api/v1/query?query=" + url_encode(promql));
    if (!r || r->result_int() != 200) return nullptr;
    return json::parse(r->body());
  }

  // The first sample's value of an instant query, if any.
  std::optional<double> scalar(const std::string& promql) {
    auto v = query(promql);
    if (v.is_null() || v.at("status").as_string() != "success") return std::nullopt;
    const auto& result = v.at("data").at("result").as_array();
    if (result.empty()) return std::nullopt;
    return std::stod(std::string(result[0].at("value").at(1).as_string()));
  }

 private:
  fs::path dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

TEST(Prometheus, ScrapesWhatWasSentAndRunsTheDashboardQueries) {
  const auto binary = find_prometheus();
  if (binary.empty()) {
    if (const char* ci = std::getenv("CI"); ci && std::string(ci) == "true")
      FAIL() << "prometheus is not installed (docker/install-deps.sh test installs it)";
    GTEST_SKIP() << "prometheus is not installed";
  }
  FakeUpstream app;
  Proxy proxy(fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 2
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes:
      - { name: api, match: { prefix: /api }, cluster: app }
      - { name: hello, match: { prefix: /hello }, direct_response: { status: 200, body: hi } }
clusters:
  - name: app
    endpoints: [127.0.0.1:{P}]
    breaker: { failure_rate: 0.5 }
    outlier_detection: {}
)",
                   {{"P", std::to_string(app.port())}}));
  PrometheusServer prom(binary, proxy.admin_port());
  ASSERT_TRUE(prom.started());
  ASSERT_TRUE(prom.ready()) << prom.log();

  // One scrape before the traffic (the series exist from the start, at 0), so
  // that rate() sees the counters move.
  for (int i = 0; i < 200 && prom.scalar("up{job=\"outrigger\"}") != 1.0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));

  constexpr int kApi = 37, kHello = 5, kMissing = 3;
  auto s = Socket::connect(proxy.port());
  auto send = [&](const char* path, int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(s.send(request_text("GET", path)));
      ASSERT_TRUE(s.read_response());
    }
  };
  // A first part, scraped before the rest: a series is born at its first value,
  // and rate() needs it to move afterwards.
  send("/api/x", 7);
  for (int i = 0; i < 200 && prom.scalar("sum(outrigger_requests_total{route=\"api\"})") != 7.0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  send("/api/x", kApi - 7);
  send("/hello", kHello);
  send("/nowhere", kMissing);

  // Prometheus scrapes every second: wait (at most 20 s) until it has seen all of it.
  std::optional<double> api, hello, missing, up;
  for (int i = 0; i < 200; ++i) {
    up = prom.scalar("up{job=\"outrigger\"}");
    api = prom.scalar("sum(outrigger_requests_total{route=\"api\",code=\"200\"})");
    hello = prom.scalar("sum(outrigger_requests_total{route=\"hello\"})");
    missing = prom.scalar("sum(outrigger_requests_total{route=\"\",code=\"404\"})");
    if (up == 1.0 && api == kApi && hello == kHello && missing == kMissing) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(up, 1.0) << prom.log();
  EXPECT_EQ(api, kApi);
  EXPECT_EQ(hello, kHello);
  EXPECT_EQ(missing, kMissing);
  EXPECT_EQ(prom.scalar("sum(outrigger_upstream_requests_total{cluster=\"app\"})"), kApi);
  EXPECT_EQ(prom.scalar("sum(outrigger_request_duration_seconds_count{route=\"api\"})"), kApi);
  EXPECT_EQ(prom.scalar("outrigger_breaker_state{cluster=\"app\"}"), 0.0);
  EXPECT_EQ(prom.scalar("sum(outrigger_endpoint_healthy{cluster=\"app\"})"), 1.0);

  // Every query of the dashboard, with Grafana's variables filled in as Grafana would.
  std::ifstream in(std::string(OUTRIGGER_SOURCE_DIR) + "/docs/grafana-dashboard.json");
  std::stringstream text;
  text << in.rdbuf();
  const auto dashboard = json::parse(text.str());
  // Two more scrapes: rate() needs two samples after the traffic.
  const auto scrapes = [&] { return prom.scalar("count_over_time(up{job=\"outrigger\"}[5m])").value_or(0); };
  const double seen = scrapes();
  for (int i = 0; i < 200 && scrapes() < seen + 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  int queries = 0;
  for (const auto& panel : dashboard.at("panels").as_array()) {
    for (const auto& target : panel.at("targets").as_array()) {
      std::string expr(target.at("expr").as_string());
      for (auto [from, to] : {std::pair<std::string, std::string>{"$__rate_interval", "1m"}, {"$job", ".*"}}) {
        for (auto at = expr.find(from); at != std::string::npos; at = expr.find(from)) expr.replace(at, from.size(), to);
      }
      const auto result = prom.query(expr);
      ASSERT_FALSE(result.is_null()) << expr;
      EXPECT_EQ(result.at("status").as_string(), "success") << expr << "\n" << json::serialize(result);
      ++queries;
    }
  }
  EXPECT_GE(queries, 15);

  // And the example query of every metric in docs/metrics.md (the last column).
  std::ifstream doc(std::string(OUTRIGGER_SOURCE_DIR) + "/docs/metrics.md");
  int examples = 0;
  for (std::string line; std::getline(doc, line);) {
    if (!line.starts_with("| `") || !line.ends_with("` |")) continue;
    const auto start = line.rfind("| `") + 3;
    std::string expr = line.substr(start, line.size() - 3 - start);
    for (auto at = expr.find("\\|"); at != std::string::npos; at = expr.find("\\|")) expr.replace(at, 2, "|");
    const auto result = prom.query(expr);
    ASSERT_FALSE(result.is_null()) << expr;
    EXPECT_EQ(result.at("status").as_string(), "success") << expr << "\n" << json::serialize(result);
    ++examples;
  }
  EXPECT_GE(examples, 30);
  // The headline panel has data.
  const auto rate = prom.scalar("sum(rate(outrigger_requests_total{route=\"api\"}[1m]))");
  ASSERT_TRUE(rate);
  EXPECT_GT(*rate, 0);
}

}  // namespace
