#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <boost/beast/core/string.hpp>
#include <boost/json/serialize.hpp>
#include <fstream>
#include <mutex>
#include <sstream>

#include "outrigger/config/loader.hpp"
#include "outrigger/http/filter_yaml.hpp"
#include "outrigger/http/filters/jwt_authn.hpp"
#include "outrigger/http/path.hpp"

namespace outrigger::http {

namespace {

using observability::JwtResult;

struct Source {  // where a token is looked for
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

FileStamp stamp_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {st.st_dev, st.st_ino, st.st_size,
          static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

std::shared_ptr<const KeySet> load_keys(const std::string& path) {
  if (::access(path.c_str(), R_OK) != 0) throw std::runtime_error(std::strerror(errno));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read the file");
  std::stringstream s;
  s << in.rdbuf();
  return std::make_shared<const KeySet>(jwt::parse_jwks(s.str()));
}

// The key sets of every provider, swapped when a file changes. Workers copy
// the pointers when the generation moves: a relaxed load per request, the
// mutex only after a change.
struct Keys {
  std::mutex mutex;
  std::vector<std::shared_ptr<const KeySet>> sets;
  std::vector<FileStamp> stamps;
  std::atomic<std::uint64_t> generation{0};
};

class JwtFilter final : public Filter {
 public:
  JwtFilter(std::shared_ptr<const std::vector<Provider>> providers, std::shared_ptr<const std::vector<Rule>> rules,
            std::shared_ptr<Keys> keys)
      : providers_(std::move(providers)), rules_(std::move(rules)), keys_(std::move(keys)) {
    take_keys();
  }

  std::optional<LocalResponse> on_request(Exchange& ex) override {
    if (keys_->generation.load(std::memory_order_acquire) != generation_) take_keys();
    auto& req = ex.request;
    // Claims headers only ever come from a verified token.
    for (const auto& p : *providers_)
      for (const auto& [claim, header] : p.forward_claims) req.erase(header);

    const auto path = path_of(req.target());
    // Rules match paths; one with an encoded separator may reach an upstream
    // as another path than the one matched (/x%2F..%2Fapi as /api): refused,
    // as the rbac filter does.
    if (has_encoded_separator(path)) return LocalResponse{400, "bad request path\n", "bad_request"};
    const Rule* rule = nullptr;
    for (const auto& r : *rules_)
      if (r.matches(path)) {
        rule = &r;
        break;
      }
    if (!rule || rule->provider >= providers_->size()) return std::nullopt;
    const auto& provider = (*providers_)[rule->provider];

    std::string_view token;
    const Source* source = nullptr;
    for (const auto& s : provider.sources) {
      const auto it = req.find(s.header);
      if (it == req.end()) continue;
      const auto value = it->value();
      if (value.size() > s.prefix.size() && boost::beast::iequals(value.substr(0, s.prefix.size()), s.prefix)) {
        token = value.substr(s.prefix.size());
        source = &s;
        break;
      }
    }
    if (token.empty()) {
      if (rule->allow_missing) return std::nullopt;
      return refuse(ex, provider, JwtResult::missing);
    }
    auto claims = std::make_shared<JwtClaims>();
    const auto result =
        jwt::verify(token, *sets_[rule->provider], provider.expect, std::chrono::system_clock::now(), claims->payload);
    if (result != JwtResult::allowed) return refuse(ex, provider, result);
    if (ex.listener_stats) ex.listener_stats->count(JwtResult::allowed);
    claims->provider = provider.name;
    for (const auto& [claim, header] : provider.forward_claims) {
      const auto* v = claims->payload.if_contains(claim);
      if (!v) continue;
      auto set = [&](std::string_view text) {
        // Beast writes field values as they are: CR or LF in a claim would add headers of its own.
        if (text.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos) req.set(header, text);
      };
      if (v->is_string()) {
        set(v->as_string());
      } else if (v->is_array()) {
        std::string joined;
        for (const auto& e : v->as_array()) {
          if (!joined.empty()) joined += ',';
          joined += e.is_string() ? std::string(e.as_string()) : boost::json::serialize(e);
        }
        set(joined);
      } else {
        set(boost::json::serialize(*v));
      }
    }
    if (!provider.forward) req.erase(source->header);
    ex.jwt = std::move(claims);
    return std::nullopt;
  }

 private:
  void take_keys() {
    std::lock_guard lock(keys_->mutex);
    sets_ = keys_->sets;
    generation_ = keys_->generation.load(std::memory_order_relaxed);
  }

  std::optional<LocalResponse> refuse(Exchange& ex, const Provider& provider, JwtResult why) {
    if (ex.listener_stats) ex.listener_stats->count(why);
    if (why == JwtResult::missing) {
      challenge_[0].value = "Bearer realm=\"" + provider.name + "\"";
      return LocalResponse{401, "Jwt is missing\n", "jwt_missing", challenge_};
    }
    challenge_[0].value = "Bearer realm=\"" + provider.name + "\", error=\"invalid_token\", error_description=\"" +
                          std::string(observability::kJwtResultNames[static_cast<std::size_t>(why)]) + "\"";
    return LocalResponse{401, "Jwt verification fails\n", "jwt_invalid", challenge_};
  }

  std::shared_ptr<const std::vector<Provider>> providers_;
  std::shared_ptr<const std::vector<Rule>> rules_;
  std::shared_ptr<Keys> keys_;
  std::vector<std::shared_ptr<const KeySet>> sets_;
  std::uint64_t generation_ = 0;
  // Copied into the reply before the filter can run again on this worker.
  config::HeaderValue challenge_[1] = {{"www-authenticate", ""}};
};

class JwtFactory final : public FilterFactory {
 public:
  JwtFactory(std::vector<Provider> providers, std::vector<Rule> rules, std::shared_ptr<Keys> keys)
      : providers_(std::make_shared<const std::vector<Provider>>(std::move(providers))),
        rules_(std::make_shared<const std::vector<Rule>>(std::move(rules))),
        keys_(std::move(keys)) {}

  Filter& filter_for_request() override { return filter_for_worker(0, 1); }
  Filter& filter_for_worker(unsigned worker, unsigned) override {
    std::lock_guard lock(mutex_);  // once per worker and config
    if (filters_.size() <= worker) filters_.resize(worker + 1);
    if (!filters_[worker]) filters_[worker] = std::make_unique<JwtFilter>(providers_, rules_, keys_);
    return *filters_[worker];
  }

  void refresh() override {
    for (std::size_t i = 0; i < providers_->size(); ++i) {
      const auto& p = (*providers_)[i];
      const auto now = stamp_of(p.jwks_file);
      if (now == keys_->stamps[i]) continue;
      keys_->stamps[i] = now;  // a broken file is tried again when it changes again
      try {
        auto set = load_keys(p.jwks_file);
        std::lock_guard lock(keys_->mutex);
        keys_->sets[i] = std::move(set);
        keys_->generation.fetch_add(1, std::memory_order_release);
        spdlog::info("jwt_authn: provider {}: reloaded {}", p.name, p.jwks_file);
      } catch (const std::exception& e) {
        spdlog::error("jwt_authn: provider {}: {} rejected, the previous keys stay: {}", p.name, p.jwks_file, e.what());
      }
    }
  }

 private:
  std::shared_ptr<const std::vector<Provider>> providers_;
  std::shared_ptr<const std::vector<Rule>> rules_;
  std::shared_ptr<Keys> keys_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<JwtFilter>> filters_;
};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_header_name(std::string_view s) {  // an RFC 9110 token
  static constexpr std::string_view specials = "!#$%&'*+-.^_`|~";
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || specials.find(c) != std::string_view::npos;
  });
}

// n as a boolean; false and an error when it is not one.
bool boolean(FilterYaml& r, const YAML::Node& n, const std::string& where) {
  bool out = false;
  if (!n.IsScalar() || !YAML::convert<bool>::decode(n, out)) r.error(n, where + ": expected true or false");
  return out;
}

}  // namespace

std::unique_ptr<FilterFactory> make_jwt_authn_filter(const config::FilterSpec& spec, const FilterContext&,
                                                     std::vector<FilterError>& errors) {
  const auto& n = *spec.node;
  const auto before = errors.size();
  FilterYaml r("jwt_authn", spec.mark, errors);
  r.keys(n, {"type", "providers", "rules"}, "jwt_authn");
  std::vector<Provider> providers;
  auto keys = std::make_shared<Keys>();
  const auto pn = n["providers"];
  if (!pn || !pn.IsSequence() || pn.size() == 0) r.error(pn ? pn : n, "providers: expected a non-empty list");
  for (std::size_t i = 0; pn && pn.IsSequence() && i < pn.size(); ++i) {
    const auto p = pn[i];
    const auto where = "providers[" + std::to_string(i) + "]";
    if (!r.keys(p, {"name", "issuer", "audiences", "jwks_file", "forward_claims", "forward", "from_headers"}, where))
      continue;
    Provider prov;
    prov.name = r.string(p, "name", where, true);
    prov.expect.issuer = r.string(p, "issuer", where, true);
    prov.jwks_file = r.string(p, "jwks_file", where, true);
    prov.expect.audiences = r.strings(p["audiences"], where + ".audiences");
    if (const auto f = p["forward_claims"]) {
      if (!f.IsMap()) r.error(f, where + ".forward_claims: expected a mapping of claim to header name");
      for (const auto& kv : f.IsMap() ? f : YAML::Node()) {
        const auto claim = kv.first.as<std::string>();
        if (!kv.second.IsScalar() || !is_header_name(kv.second.Scalar())) {
          r.error(kv.second, where + ".forward_claims." + claim + ": expected a header name");
          continue;
        }
        prov.forward_claims.emplace_back(claim, lower(kv.second.Scalar()));
      }
    }
    if (const auto f = p["forward"]) prov.forward = boolean(r, f, where + ".forward");
    if (const auto h = p["from_headers"]) {
      for (std::size_t k = 0; h.IsSequence() && k < h.size(); ++k) {
        if (!r.keys(h[k], {"name", "value_prefix"}, where + ".from_headers")) continue;
        prov.sources.push_back({lower(r.string(h[k], "name", where + ".from_headers", true)),
                                h[k]["value_prefix"].as<std::string>("")});
      }
      if (!h.IsSequence()) r.error(h, where + ".from_headers: expected a list");
    }
    if (prov.sources.empty()) prov.sources.push_back({"authorization", "Bearer "});
    for (const auto& other : providers)
      if (other.name == prov.name) r.error(p, where + ".name: '" + prov.name + "' is already a provider");
    if (!prov.jwks_file.empty()) {
      try {
        keys->stamps.push_back(stamp_of(prov.jwks_file));
        keys->sets.push_back(load_keys(prov.jwks_file));
      } catch (const std::exception& e) {
        r.error(p["jwks_file"], where + ".jwks_file: cannot use '" + prov.jwks_file + "': " + e.what());
      }
    }
    providers.push_back(std::move(prov));
  }
  std::vector<Rule> rules;
  const auto rn = n["rules"];
  if (rn && !rn.IsSequence()) r.error(rn, "rules: expected a list");
  for (std::size_t i = 0; rn && rn.IsSequence() && i < rn.size(); ++i) {
    const auto rule = rn[i];
    const auto where = "rules[" + std::to_string(i) + "]";
    if (!r.keys(rule, {"match", "requires", "allow_missing"}, where)) continue;
    Rule out{"/", "", providers.size(), false};
    if (const auto m = rule["match"]) {
      if (r.keys(m, {"prefix", "path"}, where + ".match")) {
        if (m["prefix"].IsDefined() == m["path"].IsDefined()) {
          r.error(m, where + ".match: expected one of 'prefix' or 'path'");
        } else if (m["prefix"]) {
          out.prefix = r.string(m, "prefix", where + ".match", true);
        } else {
          out.path = r.string(m, "path", where + ".match", true);
        }
      }
    }
    if (const auto req = rule["requires"]) {
      const auto name = req.as<std::string>("");
      for (std::size_t k = 0; k < providers.size(); ++k)
        if (providers[k].name == name) out.provider = k;
      if (out.provider == providers.size()) r.error(req, where + ".requires: no provider named '" + name + "'");
    }
    if (const auto a = rule["allow_missing"]) out.allow_missing = boolean(r, a, where + ".allow_missing");
    rules.push_back(std::move(out));
  }
  if (rules.empty() && errors.size() == before && !providers.empty()) {
    // No rules: every request needs a token of the first provider.
    rules.push_back({"/", "", 0, false});
  }
  if (errors.size() != before) return nullptr;
  return std::make_unique<JwtFactory>(std::move(providers), std::move(rules), std::move(keys));
}

}  // namespace outrigger::http
