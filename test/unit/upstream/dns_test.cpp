// Which addresses a DNS cluster takes from an answer, by dns_lookup_family.
#include "outrigger/upstream/dns.hpp"

#include <gtest/gtest.h>

namespace outrigger::upstream {
namespace {

using boost::asio::ip::make_address;
using F = config::DnsLookupFamily;

std::vector<std::string> keep(const std::vector<std::string>& answer, F family) {
  std::vector<boost::asio::ip::address> all;
  for (const auto& a : answer) all.push_back(make_address(a));
  std::vector<std::string> out;
  for (const auto& a : filter_family(all, family)) out.push_back(a.to_string());
  return out;
}

TEST(DnsLookupFamily, TakesTheFamiliesItIsToldInTheAnswersOrder) {
  const std::vector<std::string> both{"2001:db8::1", "192.0.2.1", "192.0.2.2", "2001:db8::2"};
  EXPECT_EQ(keep(both, F::v4_only), (std::vector<std::string>{"192.0.2.1", "192.0.2.2"}));
  EXPECT_EQ(keep(both, F::v6_only), (std::vector<std::string>{"2001:db8::1", "2001:db8::2"}));
  EXPECT_EQ(keep(both, F::v4_preferred), (std::vector<std::string>{"192.0.2.1", "192.0.2.2"}));
  EXPECT_EQ(keep(both, F::auto_), (std::vector<std::string>{"2001:db8::1", "2001:db8::2"}));
  EXPECT_EQ(keep(both, F::all), both);
}

TEST(DnsLookupFamily, FallsBackToTheOtherFamilyOnlyWhenPreferred) {
  const std::vector<std::string> v6{"2001:db8::1"}, v4{"192.0.2.1"};
  EXPECT_EQ(keep(v6, F::v4_preferred), v6);
  EXPECT_EQ(keep(v4, F::auto_), v4);
  EXPECT_TRUE(keep(v6, F::v4_only).empty());
  EXPECT_TRUE(keep(v4, F::v6_only).empty());
}

}  // namespace
}  // namespace outrigger::upstream
