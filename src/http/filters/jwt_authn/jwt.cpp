// JWKS parsing and JWS verification with OpenSSL 3 (EVP and OSSL_PARAM only).
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <boost/json/parse.hpp>
#include <stdexcept>

#include "http/filters/jwt_authn/jwt.hpp"

namespace outrigger::http::jwt {

namespace json = boost::json;


std::string base64url_decode(std::string_view in, bool& ok) {
  static constexpr auto table = [] {
    std::array<signed char, 256> t{};
    t.fill(-1);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<signed char>(i);
    return t;
  }();
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);  // tolerate padding
  std::string out;
  out.reserve(in.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  ok = in.size() % 4 != 1;
  for (unsigned char c : in) {
    const int v = table[c];
    if (v < 0) {
      ok = false;
      return {};
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

namespace {

std::shared_ptr<EVP_PKEY> own(EVP_PKEY* k) { return std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free); }

std::string field(const json::object& o, std::string_view name, bool required = true) {
  const auto* v = o.if_contains(name);
  if (!v || !v->is_string()) {
    if (required) throw std::runtime_error("a key lacks its \"" + std::string(name) + "\" string");
    return {};
  }
  return std::string(v->as_string());
}

std::string decoded(const json::object& o, std::string_view name) {
  bool ok = false;
  auto bytes = base64url_decode(field(o, name), ok);
  if (!ok || bytes.empty()) throw std::runtime_error("a key's \"" + std::string(name) + "\" is not base64url");
  return bytes;
}

std::shared_ptr<EVP_PKEY> from_params(const char* type, OSSL_PARAM_BLD* bld) {
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  EVP_PKEY* key = nullptr;
  const bool ok = params && ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
                  EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) == 1;
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  if (!ok) throw std::runtime_error(std::string("a ") + type + " key is not valid");
  return own(key);
}

std::shared_ptr<EVP_PKEY> rsa_key(const json::object& o) {
  const auto n = decoded(o, "n"), e = decoded(o, "e");
  BIGNUM* bn_n = BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()), nullptr);
  BIGNUM* bn_e = BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()), nullptr);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n);
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e);
  auto key = from_params("RSA", bld);  // the builder copied the numbers
  BN_free(bn_n);
  BN_free(bn_e);
  return key;
}

std::shared_ptr<EVP_PKEY> ec_key(const json::object& o) {
  if (field(o, "crv") != "P-256") throw std::runtime_error("an EC key is not on P-256");
  const auto x = decoded(o, "x"), y = decoded(o, "y");
  if (x.size() != 32 || y.size() != 32) throw std::runtime_error("an EC key's coordinates are not 32 bytes");
  std::string point = "\x04" + x + y;  // uncompressed
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
  OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
  return from_params("EC", bld);
}

std::shared_ptr<EVP_PKEY> ed25519_key(const json::object& o) {
  if (field(o, "crv") != "Ed25519") throw std::runtime_error("an OKP key is not Ed25519");
  const auto x = decoded(o, "x");
  EVP_PKEY* key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                              reinterpret_cast<const unsigned char*>(x.data()), x.size());
  if (!key) throw std::runtime_error("an Ed25519 key is not valid");
  return own(key);
}

// ES256 signatures are r||s (32 bytes each); OpenSSL verifies DER.
std::string ecdsa_der(std::string_view raw) {
  if (raw.size() != 64) return {};
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr);
  ECDSA_SIG_set0(sig, r, s);
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(sig, &der);
  std::string out;
  if (len > 0) out.assign(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  ECDSA_SIG_free(sig);
  return out;
}

bool verify_signature(const Key& key, std::string_view input, std::string_view signature) {
  std::string der;
  const EVP_MD* md = EVP_sha256();
  if (key.type == Key::Type::ec_p256) {
    der = ecdsa_der(signature);
    if (der.empty()) return false;
    signature = der;
  } else if (key.type == Key::Type::ed25519) {
    md = nullptr;  // EdDSA hashes internally
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok = EVP_DigestVerifyInit(ctx, nullptr, md, nullptr, key.key.get()) == 1 &&
                  EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                                   reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

std::optional<json::object> json_object(std::string_view b64) {
  bool ok = false;
  const auto text = base64url_decode(b64, ok);
  if (!ok) return std::nullopt;
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

std::optional<double> number(const json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  if (!v) return std::nullopt;
  if (v->is_int64()) return static_cast<double>(v->as_int64());
  if (v->is_uint64()) return static_cast<double>(v->as_uint64());
  if (v->is_double()) return v->as_double();
  return std::numeric_limits<double>::quiet_NaN();  // present but not a number
}

}  // namespace

std::vector<Key> parse_jwks(std::string_view text) {
  boost::system::error_code ec;
  auto doc = json::parse(text, ec);
  if (ec) throw std::runtime_error("not JSON: " + ec.message());
  const auto* keys = doc.is_object() ? doc.as_object().if_contains("keys") : nullptr;
  if (!keys || !keys->is_array()) throw std::runtime_error("no \"keys\" array");
  std::vector<Key> out;
  for (const auto& v : keys->as_array()) {
    if (!v.is_object()) throw std::runtime_error("a key is not an object");
    const auto& o = v.as_object();
    const auto kty = field(o, "kty");
    Key k{field(o, "kid", false), Key::Type::rsa, nullptr};
    if (kty == "RSA") {
      k.key = rsa_key(o);
    } else if (kty == "EC") {
      k.type = Key::Type::ec_p256;
      k.key = ec_key(o);
    } else if (kty == "OKP") {
      k.type = Key::Type::ed25519;
      k.key = ed25519_key(o);
    } else {
      continue;  // a key type we do not verify with (oct, ...): not ours to judge
    }
    out.push_back(std::move(k));
  }
  if (out.empty()) throw std::runtime_error("no RSA, EC P-256 or Ed25519 key");
  return out;
}

JwtResult verify(std::string_view token, const std::vector<Key>& keys, const Expectations& expect,
                 std::chrono::system_clock::time_point now, json::object& claims) {
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) return JwtResult::malformed;
  auto header = json_object(token.substr(0, dot1));
  auto payload = json_object(token.substr(dot1 + 1, dot2 - dot1 - 1));
  bool sig_ok = false;
  const auto signature = base64url_decode(token.substr(dot2 + 1), sig_ok);
  if (!header || !payload || !sig_ok) return JwtResult::malformed;

  const auto* alg = header->if_contains("alg");
  if (!alg || !alg->is_string()) return JwtResult::malformed;
  Key::Type type;
  if (*alg == "RS256") {
    type = Key::Type::rsa;
  } else if (*alg == "ES256") {
    type = Key::Type::ec_p256;
  } else if (*alg == "EdDSA") {
    type = Key::Type::ed25519;
  } else {
    return JwtResult::bad_signature;  // none, HS256 and the rest are never accepted
  }
  std::string_view kid;
  if (const auto* k = header->if_contains("kid"); k && k->is_string()) kid = k->as_string();
  const auto input = token.substr(0, dot2);
  bool candidate = false, verified = false;
  for (const auto& key : keys) {
    if (!kid.empty() && key.kid != kid) continue;
    if (key.type != type) {
      if (!kid.empty()) return JwtResult::bad_signature;  // the named key is of another type
      continue;
    }
    candidate = true;
    if (verify_signature(key, input, signature)) {
      verified = true;
      break;
    }
  }
  if (!candidate) return JwtResult::unknown_key;
  if (!verified) return JwtResult::bad_signature;

  // Claims, only once the signature holds.
  const double t = std::chrono::duration<double>(now.time_since_epoch()).count();
  const double leeway = static_cast<double>(expect.leeway.count());
  if (auto exp = number(*payload, "exp"); exp && !(*exp + leeway >= t)) return JwtResult::expired;
  if (auto nbf = number(*payload, "nbf"); nbf && !(*nbf - leeway <= t)) return JwtResult::not_yet_valid;
  const auto* iss = payload->if_contains("iss");
  if (!expect.issuer.empty() && (!iss || !iss->is_string() || iss->as_string() != expect.issuer))
    return JwtResult::wrong_issuer;
  if (!expect.audiences.empty()) {
    const auto* aud = payload->if_contains("aud");
    auto wanted = [&](const json::value& v) {
      return v.is_string() &&
             std::find(expect.audiences.begin(), expect.audiences.end(), std::string_view(v.as_string())) !=
                 expect.audiences.end();
    };
    bool ok = false;
    if (aud && aud->is_array()) {
      ok = std::any_of(aud->as_array().begin(), aud->as_array().end(), wanted);
    } else if (aud) {
      ok = wanted(*aud);
    }
    if (!ok) return JwtResult::wrong_audience;
  }
  claims = std::move(*payload);
  return JwtResult::allowed;
}

}  // namespace outrigger::http::jwt
