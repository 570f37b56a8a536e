#include "http/filters/jwt_authn/config.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "http/filters/jwt_authn/filter.hpp"
#include "outrigger/config/yaml_reader.hpp"

namespace outrigger::http {

namespace {

using config::YamlReader;
using Config = JwtAuthnConfig;

Config::FileStamp stamp_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {st.st_dev, st.st_ino, st.st_size,
          static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

std::shared_ptr<const Config::KeySet> load_keys(const std::string& path) {
  if (::access(path.c_str(), R_OK) != 0) throw std::runtime_error(std::strerror(errno));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read the file");
  std::stringstream s;
  s << in.rdbuf();
  return std::make_shared<const Config::KeySet>(jwt::parse_jwks(s.str()));
}

class JwtAuthnFactory final : public FilterFactory {
 public:
  explicit JwtAuthnFactory(std::shared_ptr<const Config> config) : config_(std::move(config)) {}

  std::unique_ptr<Filter> make_filter(unsigned worker) const override {
    return std::make_unique<JwtAuthnFilter>(config_, worker);
  }

  void refresh() override {
    auto& keys = *config_->keys;
    for (std::size_t i = 0; i < config_->providers.size(); ++i) {
      const auto& p = config_->providers[i];
      const auto now = stamp_of(p.jwks_file);
      if (now == keys.stamps[i]) continue;
      keys.stamps[i] = now;  // a broken file is tried again when it changes again
      const auto* counters = i < config_->reloads.size() ? &config_->reloads[i] : nullptr;
      try {
        auto set = load_keys(p.jwks_file);
        {
          std::lock_guard lock(keys.mutex);
          keys.sets[i] = std::move(set);
          keys.generation.fetch_add(1, std::memory_order_release);
        }
        if (counters) (*counters->first)[0].inc();
        spdlog::info("jwt_authn: provider {}: reloaded {}", p.name, p.jwks_file);
      } catch (const std::exception& e) {
        if (counters) (*counters->second)[0].inc();
        spdlog::error("jwt_authn: provider {}: {} rejected, the previous keys stay: {}", p.name, p.jwks_file, e.what());
      }
    }
  }

 private:
  std::shared_ptr<const Config> config_;
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

void read_provider(YamlReader& r, const YAML::Node& p, const std::string& where, Config& c) {
  if (!r.mapping(p, where, {"name", "issuer", "audiences", "jwks_file", "forward_claims", "forward", "from_headers"}))
    return;
  Config::Provider prov;
  prov.name = r.string(p, "name", where, true).value_or("");
  prov.expect.issuer = r.string(p, "issuer", where, true).value_or("");
  prov.jwks_file = r.string(p, "jwks_file", where, true).value_or("");
  prov.expect.audiences = r.strings(p, "audiences", where);
  if (auto f = YamlReader::child(p, "forward_claims")) {
    if (!f->IsMap()) r.error(*f, where + ".forward_claims", "expected a mapping of claim to header name");
    for (const auto& kv : f->IsMap() ? *f : YAML::Node()) {
      const auto claim = kv.first.as<std::string>();
      if (!kv.second.IsScalar() || !is_header_name(kv.second.Scalar())) {
        r.error(kv.second, where + ".forward_claims." + claim, "expected a header name");
        continue;
      }
      prov.forward_claims.emplace_back(claim, lower(kv.second.Scalar()));
    }
  }
  if (auto f = r.boolean(p, "forward", where)) prov.forward = *f;
  if (auto h = YamlReader::child(p, "from_headers"); h && r.sequence(*h, where + ".from_headers")) {
    for (std::size_t k = 0; k < h->size(); ++k) {
      const auto hw = YamlReader::index(where + ".from_headers", k);
      if (!r.mapping((*h)[k], hw, {"name", "value_prefix"})) continue;
      auto name = r.string((*h)[k], "name", hw, true);
      if (name) prov.sources.push_back({lower(*name), r.string((*h)[k], "value_prefix", hw).value_or("")});
    }
  }
  if (prov.sources.empty()) prov.sources.push_back({"authorization", "Bearer "});
  for (const auto& other : c.providers)
    if (other.name == prov.name) r.error(p, where + ".name", "'" + prov.name + "' is already a provider");
  if (!prov.jwks_file.empty()) {
    try {
      c.keys->stamps.push_back(stamp_of(prov.jwks_file));
      c.keys->sets.push_back(load_keys(prov.jwks_file));
    } catch (const std::exception& e) {
      r.error(p["jwks_file"], where + ".jwks_file", "cannot use '" + prov.jwks_file + "': " + e.what());
    }
  }
  c.providers.push_back(std::move(prov));
}

void read_rule(YamlReader& r, const YAML::Node& rule, const std::string& where, Config& c) {
  if (!r.mapping(rule, where, {"match", "requires", "allow_missing"})) return;
  Config::Rule out{"/", "", c.providers.size(), false};
  if (auto m = YamlReader::child(rule, "match"); m && r.mapping(*m, where + ".match", {"prefix", "path"})) {
    auto prefix = r.string(*m, "prefix", where + ".match");
    auto path = r.string(*m, "path", where + ".match");
    if (prefix.has_value() == path.has_value()) {
      r.error(*m, where + ".match", "expected one of 'prefix' or 'path'");
    } else if (prefix) {
      out.prefix = *prefix;
    } else {
      out.path = *path;
    }
  }
  if (auto name = r.string(rule, "requires", where)) {
    for (std::size_t k = 0; k < c.providers.size(); ++k)
      if (c.providers[k].name == *name) out.provider = k;
    if (out.provider == c.providers.size())
      r.error(rule["requires"], where + ".requires", "no provider named '" + *name + "'");
  }
  if (auto a = r.boolean(rule, "allow_missing", where)) out.allow_missing = *a;
  c.rules.push_back(std::move(out));
}

}  // namespace

std::unique_ptr<FilterFactory> make_jwt_authn_factory(const config::FilterSpec& spec, const FilterContext& context,
                                                      config::YamlReader& r) {
  const auto& n = *spec.node;
  const auto& path = context.path;
  const auto before = r.error_count();
  r.mapping(n, path, {"type", "providers", "rules"});
  auto c = std::make_shared<Config>();
  c->keys = std::make_shared<Config::Keys>();
  const auto providers = YamlReader::child(n, "providers");
  if (!providers || !providers->IsSequence() || providers->size() == 0)
    r.error(providers ? *providers : n, path + ".providers", "expected a non-empty list");
  for (std::size_t i = 0; providers && providers->IsSequence() && i < providers->size(); ++i)
    read_provider(r, (*providers)[i], YamlReader::index(path + ".providers", i), *c);
  if (auto rules = YamlReader::child(n, "rules"); rules && r.sequence(*rules, path + ".rules")) {
    for (std::size_t i = 0; i < rules->size(); ++i) read_rule(r, (*rules)[i], YamlReader::index(path + ".rules", i), *c);
  }
  if (r.error_count() != before) return nullptr;
  // No rules: every request needs a token of the first provider.
  if (c->rules.empty()) c->rules.push_back({"/", "", 0, false});
  if (context.stats) {
    auto& family = context.stats->counter_family(
        "outrigger_jwt_authn_total",
        "Requests checked by the jwt_authn filter, by result (allowed, or why the token was refused).",
        {"direction", "listener", "result"});
    const std::string direction(context.direction), listener(context.listener);
    for (std::size_t i = 0; i < jwt::kJwtResultNames.size(); ++i)
      c->results[i] = context.stats->series(family, {direction, listener, std::string(jwt::kJwtResultNames[i])});
    auto& reloads = context.stats->counter_family(
        "outrigger_jwt_jwks_reloads_total",
        "Reloads of a changed JWKS file, by provider and result (a failed one keeps the previous keys).",
        {"direction", "listener", "provider", "result"});
    for (const auto& p : c->providers)
      c->reloads.emplace_back(context.stats->series(reloads, {direction, listener, p.name, "success"}),
                              context.stats->series(reloads, {direction, listener, p.name, "failure"}));
  }
  return std::make_unique<JwtAuthnFactory>(std::move(c));
}

}  // namespace outrigger::http
