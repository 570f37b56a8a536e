#include "outrigger/kube/iptables.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace outrigger::kube {
namespace {

std::string line(const Command& c) {
  std::string s;
  for (std::size_t i = 4; i < c.argv.size(); ++i) s += (s.empty() ? "" : " ") + c.argv[i];  // past "iptables -w -t nat"
  return s;
}

bool has_rule(const std::vector<Command>& cs, const std::string& rule) {
  return std::any_of(cs.begin(), cs.end(), [&](const Command& c) { return line(c) == rule; });
}

TEST(Iptables, RedirectsInboundAndOutboundButNotTheProxyOrLoopback) {
  Interception o;
  o.proxy_mark = 1337;
  o.exclude_inbound_ports = {22};
  o.exclude_outbound_ports = {5432};
  o.exclude_outbound_cidrs = {"10.0.0.0/8", "2001:db8::/32"};
  const auto v4 = install_commands(o, "iptables", false);
  EXPECT_TRUE(has_rule(v4, "-A OUTRIGGER_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006"));
  EXPECT_TRUE(has_rule(v4, "-A OUTRIGGER_REDIRECT -p tcp -j REDIRECT --to-ports 15001"));
  for (const char* port : {"15006", "15001", "9901", "22"})
    EXPECT_TRUE(has_rule(v4, std::string("-A OUTRIGGER_INBOUND -p tcp --dport ") + port + " -j RETURN")) << port;
  EXPECT_TRUE(has_rule(v4, "-A OUTRIGGER_OUTPUT -m mark --mark 1337 -j RETURN"));
  EXPECT_TRUE(has_rule(v4, "-A OUTRIGGER_OUTPUT -m owner --uid-owner 2102 -j RETURN"));
  EXPECT_TRUE(has_rule(v4, "-A OUTRIGGER_OUTPUT -o lo -j RETURN"));
  EXPECT_TRUE(has_rule(v4, "-A OUTRIGGER_OUTPUT -p tcp --dport 5432 -j RETURN"));
  EXPECT_TRUE(has_rule(v4, "-A OUTRIGGER_OUTPUT -d 10.0.0.0/8 -j RETURN"));
  EXPECT_FALSE(has_rule(v4, "-A OUTRIGGER_OUTPUT -d 2001:db8::/32 -j RETURN"));  // each family its own ranges
  // The exceptions come before the redirect, which is last.
  EXPECT_EQ(line(*std::find_if(v4.rbegin(), v4.rend(), [](const Command& c) {
              return line(c).starts_with("-A OUTRIGGER_OUTPUT");
            })),
            "-A OUTRIGGER_OUTPUT -p tcp -j OUTRIGGER_REDIRECT");
  const auto v6 = install_commands(o, "ip6tables", true);
  EXPECT_TRUE(has_rule(v6, "-A OUTRIGGER_OUTPUT -d 2001:db8::/32 -j RETURN"));
  EXPECT_TRUE(has_rule(v6, "-A OUTRIGGER_OUTPUT -d ::1/128 -j RETURN"));
  EXPECT_EQ(v6.front().argv.front(), "ip6tables");
}

TEST(Iptables, EntryJumpsAreAddedOnlyWhenMissing) {
  const auto cs = install_commands(Interception{}, "iptables", false);
  const auto& last = cs.back();
  EXPECT_EQ(line(last), "-C OUTPUT -p tcp -j OUTRIGGER_OUTPUT");
  ASSERT_TRUE(last.otherwise);
  EXPECT_EQ((*last.otherwise)[4], "-A");
  // Chains are created (tolerating that they exist) and flushed before they are filled.
  EXPECT_EQ(line(cs[0]), "-N OUTRIGGER_INBOUND");
  EXPECT_TRUE(cs[0].may_fail);
  EXPECT_EQ(line(cs[1]), "-F OUTRIGGER_INBOUND");
  EXPECT_FALSE(cs[1].may_fail);
}

TEST(Iptables, CleanupRemovesTheJumpsThenTheChains) {
  const auto cs = cleanup_commands("iptables");
  EXPECT_EQ(line(cs[0]), "-D PREROUTING -p tcp -j OUTRIGGER_INBOUND");
  EXPECT_EQ(line(cs[1]), "-D OUTPUT -p tcp -j OUTRIGGER_OUTPUT");
  EXPECT_EQ(line(cs.back()), "-X OUTRIGGER_REDIRECT");
  EXPECT_TRUE(std::all_of(cs.begin(), cs.end(), [](const Command& c) { return c.may_fail; }));
}

TEST(Iptables, ChecksTheRanges) {
  EXPECT_EQ(check_cidrs({"10.0.0.0/8", "2001:db8::/32", "192.0.2.1/32"}), "");
  EXPECT_NE(check_cidrs({"10.0.0.0/33"}).find("'10.0.0.0/33' is not an address range"), std::string::npos);
  EXPECT_NE(check_cidrs({"example.com"}), "");
}

}  // namespace
}  // namespace outrigger::kube
