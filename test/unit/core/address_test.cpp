#include "outrigger/core/address.hpp"

#include <gtest/gtest.h>

namespace outrigger::core {
namespace {

TEST(Address, ParsesIpv4Ipv6AndHostNames) {
  EXPECT_EQ(parse_address("127.0.0.1:80", false), (Address{"127.0.0.1", 80}));
  EXPECT_EQ(parse_address("[::1]:8080", false), (Address{"::1", 8080}));
  EXPECT_EQ(parse_address("localhost:9901", false), (Address{"localhost", 9901}));
}

TEST(Address, FormatsIpv6WithBrackets) {
  EXPECT_EQ((Address{"::1", 80}).to_string(), "[::1]:80");
  EXPECT_EQ((Address{"10.0.0.1", 80}).to_string(), "10.0.0.1:80");
}

TEST(Address, AllowsPortZeroOnlyWhenAsked) {
  EXPECT_FALSE(parse_address("127.0.0.1:0", false));
  EXPECT_TRUE(parse_address("127.0.0.1:0", true));
}

TEST(Address, RejectsMalformedAddressesWithAReason) {
  std::string why;
  EXPECT_FALSE(parse_address("127.0.0.1", false, &why));
  EXPECT_EQ(why, "expected host:port");
  EXPECT_FALSE(parse_address("127.0.0.1:99999", false, &why));
  EXPECT_FALSE(parse_address("300.1.1.1:80", false, &why));
  EXPECT_EQ(why, "invalid IPv4 address");
  EXPECT_FALSE(parse_address("::1:80", false, &why));
  EXPECT_FALSE(parse_address("[::g]:80", false, &why));
  EXPECT_FALSE(parse_address("bad_host:80", false, &why));
  EXPECT_FALSE(parse_address("host:http", false, &why));
}

}  // namespace
}  // namespace outrigger::core
