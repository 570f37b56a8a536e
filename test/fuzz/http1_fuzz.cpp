// HTTP/1.1 requests and responses through the real codec and filter chain
// (http_harness.hpp): the input's request bytes into an Http1Connection over
// a loopback socket, its response bytes from the upstream through an
// Http1Client and the router's relay. Never a crash, a sanitizer report, or
// a connection that stays open once the client is done.
#include <cstdint>

#include "http_harness.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  outrigger::fuzz::enter_scratch_directory("outrigger-fuzz-http1");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static auto* harness = new outrigger::fuzz::Harness();  // for the process: never destroyed
  harness->run({}, {reinterpret_cast<const char*>(data), size});
  return 0;
}
