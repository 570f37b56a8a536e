// Test-side JWTs: keys made when the test runs (RSA 2048, EC P-256, Ed25519),
// their public JWKs, and compact tokens signed with them. Header-only, for
// the unit and the integration tests alike.
#pragma once

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace testing_support {

inline std::string b64url(std::string_view bytes) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += a[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += a[(acc << (6 - bits)) & 63];
  return out;
}

class JwtKey {
 public:
  static JwtKey rsa(std::string kid) { return JwtKey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}), "RS256", std::move(kid)); }
  static JwtKey ec(std::string kid) { return JwtKey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), "ES256", std::move(kid)); }
  static JwtKey ed25519(std::string kid) { return JwtKey(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), "EdDSA", std::move(kid)); }

  const std::string& alg() const { return alg_; }
  const std::string& kid() const { return kid_; }

  // The public key as a JWK (a JSON object).
  std::string jwk() const {
    std::string kid = kid_.empty() ? "" : ",\"kid\":\"" + kid_ + "\"";
    if (alg_ == "RS256") {
      return "{\"kty\":\"RSA\"" + kid + ",\"n\":\"" + b64url(bn(OSSL_PKEY_PARAM_RSA_N)) + "\",\"e\":\"" +
             b64url(bn(OSSL_PKEY_PARAM_RSA_E)) + "\"}";
    }
    if (alg_ == "ES256") {
      unsigned char buf[65];
      std::size_t len = 0;
      EVP_PKEY_get_octet_string_param(key_.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, buf, sizeof buf, &len);
      const std::string point(reinterpret_cast<char*>(buf), len);
      return "{\"kty\":\"EC\",\"crv\":\"P-256\"" + kid + ",\"x\":\"" + b64url(point.substr(1, 32)) + "\",\"y\":\"" +
             b64url(point.substr(33, 32)) + "\"}";
    }
    unsigned char raw[32];
    std::size_t len = sizeof raw;
    EVP_PKEY_get_raw_public_key(key_.get(), raw, &len);
    return "{\"kty\":\"OKP\",\"crv\":\"Ed25519\"" + kid + ",\"x\":\"" +
           b64url(std::string_view(reinterpret_cast<char*>(raw), len)) + "\"}";
  }

  // A compact JWS of `payload` (JSON text); `header` replaces the usual one.
  std::string sign(const std::string& payload, std::string header = "") const {
    if (header.empty())
      header = "{\"alg\":\"" + alg_ + "\",\"typ\":\"JWT\"" + (kid_.empty() ? "" : ",\"kid\":\"" + kid_ + "\"") + "}";
    const auto input = b64url(header) + "." + b64url(payload);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestSignInit(ctx, nullptr, alg_ == "EdDSA" ? nullptr : EVP_sha256(), nullptr, key_.get());
    std::size_t len = 0;
    EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size());
    std::string sig(len, '\0');
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                   reinterpret_cast<const unsigned char*>(input.data()), input.size());
    sig.resize(len);
    EVP_MD_CTX_free(ctx);
    if (alg_ == "ES256") sig = raw_ecdsa(sig);
    return input + "." + b64url(sig);
  }

 private:
  JwtKey(EVP_PKEY* k, std::string alg, std::string kid)
      : key_(k, EVP_PKEY_free), alg_(std::move(alg)), kid_(std::move(kid)) {
    if (!k) throw std::runtime_error("key generation failed");
  }
  std::string bn(const char* name) const {
    BIGNUM* b = nullptr;
    EVP_PKEY_get_bn_param(key_.get(), name, &b);
    std::string out(static_cast<std::size_t>(BN_num_bytes(b)), '\0');
    BN_bn2bin(b, reinterpret_cast<unsigned char*>(out.data()));
    BN_free(b);
    return out;
  }
  static std::string raw_ecdsa(const std::string& der) {  // DER -> r||s, 32 bytes each
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
    std::string out(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char*>(out.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char*>(out.data()) + 32, 32);
    ECDSA_SIG_free(sig);
    return out;
  }

  std::shared_ptr<EVP_PKEY> key_;
  std::string alg_, kid_;
};

inline std::string jwks(const std::vector<const JwtKey*>& keys) {
  std::string out = "{\"keys\":[";
  for (std::size_t i = 0; i < keys.size(); ++i) {
    // Appended piece by piece: `"," + string` trips GCC 12's -O2 -Wrestrict false positive.
    if (i) out += ',';
    out += keys[i]->jwk();
  }
  out += "]}";
  return out;
}

}  // namespace testing_support
