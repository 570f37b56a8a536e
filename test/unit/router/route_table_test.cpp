#include "outrigger/router/route_table.hpp"

#include <gtest/gtest.h>

#include <deque>

namespace outrigger::router {
namespace {

namespace bhttp = boost::beast::http;

// Owns the config routes the compiled routes point at.
struct Table {
  std::deque<config::Route> configs;
  std::vector<CompiledRoute> compiled;

  Table& add(std::string name, config::RouteMatch match) {
    auto& r = configs.emplace_back();
    r.name = std::move(name);
    r.match = std::move(match);
    CompiledRoute c;
    c.config = &r;
    if (r.match.regex) c.path_regex.emplace(*r.match.regex);
    for (const auto& h : r.match.headers) c.headers.emplace_back(h);
    compiled.push_back(std::move(c));
    return *this;
  }
  std::string match(http::RequestMessage& req) {
    RouteTable t(compiled);
    const auto* r = t.match(req);
    return r ? r->config->name : "";
  }
};

http::RequestMessage request(bhttp::verb method, std::string target, std::string host = "svc") {
  http::RequestMessage r{method, target, 11};
  r.set(bhttp::field::host, host);
  return r;
}

TEST(RouteTable, FirstMatchingRouteWins) {
  Table t;
  t.add("api", {.prefix = "/api"}).add("root", {.prefix = "/"});
  auto api = request(bhttp::verb::get, "/api/orders?x=1");
  auto other = request(bhttp::verb::get, "/index.html");
  EXPECT_EQ(t.match(api), "api");
  EXPECT_EQ(t.match(other), "root");
}

TEST(RouteTable, ExactPathIgnoresQueryString) {
  Table t;
  t.add("health", {.path = "/healthz"});
  auto yes = request(bhttp::verb::get, "/healthz?verbose=1");
  auto no = request(bhttp::verb::get, "/healthz/deep");
  EXPECT_EQ(t.match(yes), "health");
  EXPECT_EQ(t.match(no), "");
}

TEST(RouteTable, RegexMustMatchTheWholePath) {
  Table t;
  t.add("user", {.regex = "/users/[0-9]+"});
  auto yes = request(bhttp::verb::get, "/users/42");
  auto no = request(bhttp::verb::get, "/users/42/photos");
  EXPECT_EQ(t.match(yes), "user");
  EXPECT_EQ(t.match(no), "");
}

TEST(RouteTable, MatchesMethods) {
  Table t;
  t.add("writes", {.prefix = "/", .methods = {"POST", "PUT"}}).add("rest", {});
  auto post = request(bhttp::verb::post, "/x");
  auto get = request(bhttp::verb::get, "/x");
  EXPECT_EQ(t.match(post), "writes");
  EXPECT_EQ(t.match(get), "rest");
}

TEST(RouteTable, MatchesHostsWithWildcardAndPort) {
  Table t;
  t.add("api", {.hosts = {"api.example.com"}}).add("any-sub", {.hosts = {"*.example.com"}});
  auto api = request(bhttp::verb::get, "/", "API.example.com:8080");
  auto www = request(bhttp::verb::get, "/", "www.example.com");
  auto bare = request(bhttp::verb::get, "/", "example.com");
  EXPECT_EQ(t.match(api), "api");
  EXPECT_EQ(t.match(www), "any-sub");
  EXPECT_EQ(t.match(bare), "");
}

TEST(RouteTable, MatchesHeadersExactPrefixRegexPresentAndAbsent) {
  Table t;
  t.add("canary", {.headers = {{.name = "x-env", .exact = "canary"}}})
      .add("beta", {.headers = {{.name = "x-env", .prefix = "beta"}}})
      .add("num", {.headers = {{.name = "x-env", .regex = "[0-9]+"}}})
      .add("no-env", {.headers = {{.name = "x-env", .invert = true}}})
      .add("has-env", {.headers = {{.name = "x-env"}}});
  auto req = [](std::optional<std::string> env) {
    auto r = request(bhttp::verb::get, "/");
    if (env) r.set("x-env", *env);
    return r;
  };
  auto canary = req("canary"), beta = req("beta-2"), num = req("123"), none = req(std::nullopt), other = req("prod");
  EXPECT_EQ(t.match(canary), "canary");
  EXPECT_EQ(t.match(beta), "beta");
  EXPECT_EQ(t.match(num), "num");
  EXPECT_EQ(t.match(none), "no-env");
  EXPECT_EQ(t.match(other), "has-env");
}

TEST(RouteTable, PathOfDropsQueryAndFragment) {
  EXPECT_EQ(path_of("/a/b?c=d#e"), "/a/b");
  EXPECT_EQ(path_of("/a#frag"), "/a");
  EXPECT_EQ(path_of("/"), "/");
}

}  // namespace
}  // namespace outrigger::router
