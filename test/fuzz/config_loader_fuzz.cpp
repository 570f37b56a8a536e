// The YAML config loader (config/loader.hpp) on any input: it returns a
// config or a list of positioned errors (each naming the file), never throws
// and never hangs (libFuzzer's -timeout). A config it accepts then has its
// filters built by their factories, as a snapshot does (jwt_authn, rbac,
// local_rate_limit, tracing), which validate their own keys the same way.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "fixture_keys.hpp"
#include "outrigger/config/loader.hpp"
#include "outrigger/config/yaml_reader.hpp"
#include "outrigger/http/filter.hpp"

namespace {

void fail(const char* what) {
  std::fprintf(stderr, "config loader: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // A jwks_file the configs may name ("jwks.json"), in a directory of our own.
  auto dir = std::filesystem::temp_directory_path() / ("outrigger-fuzz-config-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "jwks.json") << outrigger::fuzz::kJwks;
  std::filesystem::current_path(dir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace outrigger;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto result = config::load_string(text, "fuzz.yaml");
  if (result.ok() != result.errors.empty()) fail("a config with errors, or neither");
  for (const auto& e : result.errors) {
    if (e.file != "fuzz.yaml") fail("an error that does not name the file");
    if (e.message.empty()) fail("an error without a message");
    (void)e.to_string();
  }
  if (!result.ok()) return 0;
  std::vector<config::Diagnostic> errors;
  const std::string file = "fuzz.yaml";  // the reader keeps a reference to it
  config::YamlReader yaml(file, errors);
  for (const auto& l : result.config->listeners) {
    for (std::size_t i = 0; i < l.filters.size(); ++i) {
      const http::FilterContext context{"listeners." + l.name + ".filters[" + std::to_string(i) + "]", l.name,
                                        l.direction == config::Direction::inbound ? "inbound" : "outbound"};
      const auto before = errors.size();
      auto factory = http::make_filter_factory(l.filters[i], context, yaml);
      if (!factory && errors.size() == before) fail("a filter refused without an error");
      if (factory) (void)factory->make_filter(0);
    }
  }
  return 0;
}
