#include "http/filters/jwt_authn/filter.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/json/serialize.hpp>

#include "outrigger/http/jwt_claims.hpp"
#include "outrigger/http/path.hpp"

namespace outrigger::http {

using jwt::JwtResult;

JwtAuthnFilter::JwtAuthnFilter(std::shared_ptr<const JwtAuthnConfig> config, unsigned worker)
    : config_(std::move(config)) {
  for (std::size_t i = 0; i < counters_.size(); ++i)
    if (auto* series = config_->results[i]) counters_[i] = &(*series)[worker];
  take_keys();
}

void JwtAuthnFilter::take_keys() {
  std::lock_guard lock(config_->keys->mutex);
  sets_ = config_->keys->sets;
  generation_ = config_->keys->generation.load(std::memory_order_relaxed);
}

awaitable<FilterResult> JwtAuthnFilter::on_request(Exchange& ex) {
  if (config_->keys->generation.load(std::memory_order_acquire) != generation_) take_keys();
  auto& req = ex.request;
  // Claims headers only ever come from a verified token.
  for (const auto& p : config_->providers)
    for (const auto& [claim, header] : p.forward_claims) req.erase(header);

  const auto path = path_of(req.target());
  // Rules match paths; one with an encoded separator may reach an upstream
  // as another path than the one matched (/x%2F..%2Fapi as /api): refused,
  // as the rbac filter does.
  if (has_encoded_separator(path)) co_return LocalReply{400, "bad request path\n", "bad_request"};
  const JwtAuthnConfig::Rule* rule = nullptr;
  for (const auto& r : config_->rules)
    if (r.matches(path)) {
      rule = &r;
      break;
    }
  if (!rule || rule->provider >= config_->providers.size()) co_return std::nullopt;
  const auto& provider = config_->providers[rule->provider];

  std::string_view token;
  const JwtAuthnConfig::Source* source = nullptr;
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
    if (rule->allow_missing) co_return std::nullopt;
    co_return refuse(provider, JwtResult::missing);
  }
  JwtClaims claims;
  const auto result =
      jwt::verify(token, *sets_[rule->provider], provider.expect, std::chrono::system_clock::now(), claims.payload);
  if (result != JwtResult::allowed) co_return refuse(provider, result);
  count(JwtResult::allowed);
  claims.provider = provider.name;
  for (const auto& forward : provider.forward_claims) {
    // Named, not a structured binding: the lambda below captures it (clang 14 cannot capture bindings).
    const std::string& header = forward.second;
    const auto* v = claims.payload.if_contains(forward.first);
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
  ex.state.emplace<JwtClaims>(std::move(claims));
  co_return std::nullopt;
}

LocalReply JwtAuthnFilter::refuse(const JwtAuthnConfig::Provider& provider, JwtResult why) {
  count(why);
  LocalReply reply{401, "Jwt verification fails\n", "jwt_invalid"};
  if (why == JwtResult::missing) {
    reply.body = "Jwt is missing\n";
    reply.reason = "jwt_missing";
    reply.extra = {"www-authenticate", "Bearer realm=\"" + provider.name + "\""};
  } else {
    reply.extra = {"www-authenticate", "Bearer realm=\"" + provider.name +
                                           "\", error=\"invalid_token\", error_description=\"" +
                                           std::string(jwt::kJwtResultNames[static_cast<std::size_t>(why)]) + "\""};
  }
  return reply;
}

}  // namespace outrigger::http
