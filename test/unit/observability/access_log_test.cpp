#include "outrigger/observability/access_log.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace outrigger::observability {
namespace {

class AccessLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("outrigger-access-log-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "access.log").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::vector<std::string> lines() const {
    std::ifstream in(path_);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }

  static AccessLogEntry entry() {
    AccessLogEntry e;
    e.start_time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'790'000'000'123));
    e.duration = std::chrono::microseconds(1500);
    e.method = "GET";
    e.path = "/api?x=1";
    e.protocol = "HTTP/1.1";
    e.response_code = 200;
    e.bytes_received = 3;
    e.bytes_sent = 12;
    e.user_agent = "curl/8";
    e.request_id = "rid";
    e.authority = "svc";
    e.upstream_host = "127.0.0.1:8080";
    e.route = "root";
    e.cluster = "app";
    e.listener = "ingress";
    e.downstream_address = "127.0.0.1";
    return e;
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(AccessLogTest, IsNullWhenDisabled) {
  config::AccessLog c;
  c.enabled = false;
  EXPECT_EQ(AccessLog::create(c), nullptr);
}

TEST_F(AccessLogTest, WritesOneJsonObjectPerLine) {
  config::AccessLog c;
  c.enabled = true;
  c.path = path_;
  {
    auto log = AccessLog::create(c);
    log->write(entry());
    log->write(entry());
  }
  const auto got = lines();
  ASSERT_EQ(got.size(), 2u);
  const auto v = boost::json::parse(got[0]).as_object();
  EXPECT_EQ(v.at("start_time").as_string(), "2026-09-21T14:13:20.123Z");
  EXPECT_DOUBLE_EQ(v.at("duration_ms").to_number<double>(), 1.5);
  EXPECT_EQ(v.at("method").as_string(), "GET");
  EXPECT_EQ(v.at("path").as_string(), "/api?x=1");
  EXPECT_EQ(v.at("response_code").to_number<int>(), 200);
  EXPECT_EQ(v.at("bytes_sent").to_number<int>(), 12);
  EXPECT_EQ(v.at("upstream_host").as_string(), "127.0.0.1:8080");
  EXPECT_EQ(v.at("error").as_string(), "");
  EXPECT_EQ(v.size(), 21u);  // every field: trace_id, span_id and peer_identity included (empty when not set)
}

TEST_F(AccessLogTest, EscapesQuotesAndControlCharactersInJson) {
  config::AccessLog c;
  c.enabled = true;
  c.path = path_;
  {
    auto log = AccessLog::create(c);
    auto e = entry();
    e.user_agent = "evil\"agent\nsecond line\x01";
    log->write(e);
  }
  const auto got = lines();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(boost::json::parse(got[0]).at("user_agent").as_string(), "evil\"agent\nsecond line\x01");
}

TEST_F(AccessLogTest, SubstitutesTextFieldsAndDashesEmptyOnes) {
  config::AccessLog c;
  c.enabled = true;
  c.path = path_;
  c.format = config::AccessLogFormat::text;
  c.text_format = "%METHOD% %PATH% %RESPONSE_CODE% %ERROR% %DURATION_MS%ms 100%% [%ROUTE%/%CLUSTER%]";
  {
    auto log = AccessLog::create(c);
    log->write(entry());
  }
  EXPECT_EQ(lines(), (std::vector<std::string>{"GET /api?x=1 200 - 1.500ms 100% [root/app]"}));
}

TEST_F(AccessLogTest, RejectsUnknownTextFields) {
  EXPECT_EQ(AccessLog::validate_format("%METHOD% %FOO%"), "unknown access log field %FOO% at offset 9");
  EXPECT_EQ(AccessLog::validate_format("%METHOD"), "unterminated access log field at offset 0");
  EXPECT_EQ(AccessLog::validate_format(config::AccessLog{}.text_format), "");
  config::AccessLog c;
  c.enabled = true;
  c.path = path_;
  c.format = config::AccessLogFormat::text;
  c.text_format = "%NOPE%";
  EXPECT_THROW(AccessLog::create(c), std::runtime_error);
}

TEST_F(AccessLogTest, RefusesAPathThatCannotBeOpened) {
  config::AccessLog c;
  c.enabled = true;
  std::ofstream(path_) << "a plain file\n";
  c.path = path_ + "/access.log";  // below a file: cannot be created
  EXPECT_THROW(AccessLog::create(c), std::runtime_error);
}

}  // namespace
}  // namespace outrigger::observability
