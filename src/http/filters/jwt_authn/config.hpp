// The `jwt_authn` filter: checks the JSON Web Token a request carries
// (`Authorization: Bearer ...` by default) against the providers its rules
// require, as Envoy's filter of the same name does (jwt.hpp verifies). Key
// sets (JWKS files) are parsed when the config loads and again when a file
// changes, never per request.
//
// A missing or bad token where a rule requires one is answered 401 with a
// `WWW-Authenticate: Bearer` header (RFC 6750). A good one leaves its claims
// in the exchange's state (http::JwtClaims, for rbac's jwt_claim
// principals), copies the claims named in `forward_claims` into request
// headers (the client's own copies of those headers are always removed
// first), and is removed from the request unless `forward: true`. Every check
// is counted by result in outrigger_jwt_authn_total.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "http/filters/jwt_authn/jwt.hpp"
#include "outrigger/http/filter.hpp"
#include "outrigger/observability/stats.hpp"

namespace outrigger::http {

struct JwtAuthnConfig {
  struct Source {        // where a token is looked for
    std::string header;  // lower case
    std::string prefix;  // e.g. "Bearer "
  };
  struct Provider {
    std::string name;
    jwt::Expectations expect;
    std::string jwks_file;
    std::vector<std::pair<std::string, std::string>> forward_claims;  // claim -> header (lower case)
    bool forward = false;
    std::vector<Source> sources;
  };
  struct Rule {
    std::string prefix, path;  // one of them
    std::size_t provider;      // index; providers.size(): no requirement
    bool allow_missing = false;
    bool matches(std::string_view target_path) const {
      return path.empty() ? target_path.starts_with(prefix) : target_path == path;
    }
  };
  using KeySet = std::vector<jwt::Key>;
  struct FileStamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    std::int64_t mtime_ns = 0;
    bool operator==(const FileStamp&) const = default;
  };
  // The key sets of every provider, swapped when a file changes (main
  // thread). Workers copy the pointers when the generation moves: a relaxed
  // load per request, the mutex only after a change.
  struct Keys {
    std::mutex mutex;
    std::vector<std::shared_ptr<const KeySet>> sets;
    std::vector<FileStamp> stamps;
    std::atomic<std::uint64_t> generation{0};
  };

  std::vector<Provider> providers;
  std::vector<Rule> rules;
  std::shared_ptr<Keys> keys;
  // outrigger_jwt_authn_total by jwt::JwtResult; null entries without a registry.
  std::array<observability::PerWorker<observability::Counter>*, jwt::kJwtResultNames.size()> results{};
  // outrigger_jwt_jwks_reloads_total per provider, success then failure
  // (written by the main thread's refresh only: its slice 0).
  std::vector<std::pair<observability::PerWorker<observability::Counter>*,
                        observability::PerWorker<observability::Counter>*>> reloads;
};

std::unique_ptr<FilterFactory> make_jwt_authn_factory(const config::FilterSpec& spec, const FilterContext& context,
                                                      config::YamlReader& yaml);

}  // namespace outrigger::http
