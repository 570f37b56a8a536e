#include "outrigger/http/filters/local_rate_limit.hpp"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

namespace outrigger::http {
namespace {

std::vector<FilterError> errors_of(const std::string& yaml) {
  config::FilterSpec spec{"local_rate_limit", std::make_shared<const YAML::Node>(YAML::Load(yaml)), {3, 7}};
  std::vector<FilterError> errors;
  auto f = make_local_rate_limit_filter(spec, {}, errors);
  EXPECT_EQ(f == nullptr, !errors.empty());
  return errors;
}

std::string all(const std::vector<FilterError>& errors) {
  std::string out;
  for (const auto& e : errors) out += e.message + "\n";
  return out;
}

TEST(LocalRateLimitConfig, AcceptsEveryKeyKind) {
  for (const char* key : {"none", "source_ip", "peer_identity", "x-user"})
    EXPECT_TRUE(errors_of(std::string("{ type: local_rate_limit, tokens_per_second: 5, key: ") + key + " }").empty())
        << key;
}

TEST(LocalRateLimitConfig, ReportsWhatIsWrong) {
  EXPECT_NE(all(errors_of("{ type: local_rate_limit }")).find("missing required key 'tokens_per_second'"),
            std::string::npos);
  EXPECT_NE(all(errors_of("{ type: local_rate_limit, tokens_per_second: -1 }")).find("must be a number above 0"),
            std::string::npos);
  EXPECT_NE(all(errors_of("{ type: local_rate_limit, tokens_per_second: 1, brust: 2 }")).find("did you mean 'burst'"),
            std::string::npos);
  EXPECT_NE(all(errors_of("{ type: local_rate_limit, tokens_per_second: 1, key: 'a b' }")).find("local_rate_limit.key"),
            std::string::npos);
}

}  // namespace
}  // namespace outrigger::http
