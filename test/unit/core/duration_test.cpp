#include "outrigger/core/duration.hpp"

#include <gtest/gtest.h>

namespace outrigger::core {
namespace {

using namespace std::chrono_literals;

TEST(Duration, ParsesMillisecondsSecondsMinutesHours) {
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("15s"), 15s);
  EXPECT_EQ(parse_duration("1m"), 1min);
  EXPECT_EQ(parse_duration("2h"), 2h);
  EXPECT_EQ(parse_duration("1.5s"), 1500ms);
  EXPECT_EQ(parse_duration("0"), 0ms);
}

TEST(Duration, RejectsSpelledOutUnits) {
  EXPECT_FALSE(parse_duration("5 seconds"));
  EXPECT_FALSE(parse_duration("5sec"));
  EXPECT_FALSE(parse_duration("5 s"));
}

TEST(Duration, RejectsMissingUnitNegativeAndEmpty) {
  EXPECT_FALSE(parse_duration("10"));
  EXPECT_FALSE(parse_duration("-1s"));
  EXPECT_FALSE(parse_duration(""));
  EXPECT_FALSE(parse_duration("s"));
  EXPECT_FALSE(parse_duration("1..5s"));
  EXPECT_FALSE(parse_duration("99999999999999h"));
}

}  // namespace
}  // namespace outrigger::core
