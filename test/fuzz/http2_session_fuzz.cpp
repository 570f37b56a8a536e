// The HTTP/2 session (http/http2_session.hpp) on frames in any order: the
// client connection preface, then the input's bytes, into the real
// Http1Connection, which hands the connection to its nghttp2 server session;
// each stream runs through the filter chain and the router's relay to the
// upstream (http_harness.hpp), which answers with the input's response
// bytes, if any. Never a crash, a sanitizer report, or a session that stays
// open once the client is done.
#include <cstdint>
#include <string_view>

#include "http_harness.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  outrigger::fuzz::enter_scratch_directory("outrigger-fuzz-http2");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  static auto* harness = new outrigger::fuzz::Harness();  // for the process: never destroyed
  harness->run(kPreface, {reinterpret_cast<const char*>(data), size});
  return 0;
}
