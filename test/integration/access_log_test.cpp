// The access log as an operator reads it: one JSON line per exchange.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <filesystem>
#include <fstream>

#include "support/net.hpp"

namespace {

using namespace testing_support;

TEST(AccessLog, WritesOneJsonLinePerExchangeIncludingRefusedOnes) {
  FakeUpstream up;
  const auto path = std::filesystem::temp_directory_path() / ("outrigger-access-" + std::to_string(::getpid()) + ".log");
  std::filesystem::remove(path);
  {
    Proxy proxy(fill(R"(
admin: { enabled: false }
workers: 1
log_level: off
access_log: { path: {PATH}, format: json }
listeners:
  - name: ingress
    address: 127.0.0.1:0
    routes: [{ name: api, match: { prefix: /api }, cluster: app }]
clusters:
  - { name: app, endpoints: [127.0.0.1:{UP}] }
)",
                     {{"PATH", path.string()}, {"UP", std::to_string(up.port())}}));
    ASSERT_TRUE(http_get(proxy.port(), "/api/orders?page=2", {{"User-Agent", "test-agent"}, {"X-Request-Id", "r-1"}}));
    ASSERT_TRUE(http_get(proxy.port(), "/elsewhere"));
    auto s = Socket::connect(proxy.port());
    ASSERT_TRUE(s.send("GARBAGE\r\n\r\n"));
    ASSERT_TRUE(s.read_response());
    EXPECT_EQ(proxy.drain_and_wait(), 0);
  }  // the server and its access log are gone: everything is flushed
  std::ifstream in(path);
  std::vector<boost::json::object> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(boost::json::parse(line).as_object());
  std::filesystem::remove(path);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].at("method").as_string(), "GET");
  EXPECT_EQ(lines[0].at("path").as_string(), "/api/orders?page=2");
  EXPECT_EQ(lines[0].at("response_code").to_number<int>(), 200);
  EXPECT_EQ(lines[0].at("route").as_string(), "api");
  EXPECT_EQ(lines[0].at("cluster").as_string(), "app");
  EXPECT_EQ(lines[0].at("upstream_host").as_string(), "127.0.0.1:" + std::to_string(up.port()));
  EXPECT_EQ(lines[0].at("user_agent").as_string(), "test-agent");
  EXPECT_EQ(lines[0].at("request_id").as_string(), "r-1");
  EXPECT_EQ(lines[0].at("listener").as_string(), "ingress");
  EXPECT_EQ(lines[1].at("response_code").to_number<int>(), 404);
  EXPECT_EQ(lines[1].at("error").as_string(), "no_route");
  EXPECT_EQ(lines[2].at("response_code").to_number<int>(), 400);
  EXPECT_EQ(lines[2].at("error").as_string(), "bad_request");
}

}  // namespace
