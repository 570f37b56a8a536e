// h2spec, the HTTP/2 conformance suite (test/tools/h2spec), against an h2c
// listener and a TLS listener: every one of its 146 tests passes.
#include <gtest/gtest.h>

#include "support/net.hpp"
#include "support/pki.hpp"
#include "support/process.hpp"

namespace {

using namespace testing_support;

std::string config(const std::string& listener_extra) {
  // A body of at least 5 bytes: h2spec's negative-window test needs one.
  return fill(R"(
admin: { address: 127.0.0.1:0 }
workers: 1
log_level: off
listeners:
  - name: ingress
    address: 127.0.0.1:0
    {EXTRA}
    routes:
      - { name: spec, match: { prefix: / }, direct_response: { status: 200, body: "hello, h2spec\n" } }
)",
              {{"EXTRA", listener_extra}});
}

void expect_all_pass(const std::vector<std::string>& args) {
  if (!have_program(H2SPEC_BINARY)) {
    if (std::getenv("CI")) FAIL() << "h2spec was not built (Go missing?): " << H2SPEC_BINARY;
    GTEST_SKIP() << "h2spec not built: docker/install-deps.sh test installs Go, then rebuild";
  }
  std::vector<std::string> argv{H2SPEC_BINARY, "-h", "127.0.0.1", "-o", "2"};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto r = run_program(argv, 120s);
  EXPECT_NE(r.out.find("146 tests, 146 passed, 0 skipped, 0 failed"), std::string::npos) << r.out << r.err;
}

TEST(Http2Conformance, H2specPassesOnCleartext) {
  // protocol: http2, so that a malformed preface is an HTTP/2 error (on an
  // `auto` listener it is an HTTP/1.1 request, answered 400).
  Proxy proxy(config("protocol: http2"));
  expect_all_pass({"-p", std::to_string(proxy.port())});
}

TEST(Http2Conformance, H2specPassesOverTls) {
  TestPki pki;
  const auto server = pki.issue("server", {.dns = {"localhost"}});
  Proxy proxy(config("tls: { cert: " + server.cert + ", key: " + server.key + " }"));
  expect_all_pass({"-p", std::to_string(proxy.port()), "-t", "-k"});
}

}  // namespace
