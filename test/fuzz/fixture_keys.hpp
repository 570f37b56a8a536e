// The fixed key set of the JWT and HTTP fuzz targets: public keys only
// (RS256 "r1", ES256 "e1", EdDSA "d1"), made once with openssl; the seed
// corpora hold tokens signed with their private halves (not kept).
#pragma once

#include <string_view>

namespace outrigger::fuzz {

inline constexpr std::string_view kIssuer = "https://auth.example.com";
inline constexpr std::string_view kJwks = R"({"keys": [{"kty": "RSA", "kid": "r1", "alg": "RS256", "n": "mkQwK6aFFQ14lHPL5MzfPVz98D7b6rkRSxrpVdvq4LyeoxpuM_LXKHztvN3IrvuSANl5jLoGw0EUGsgFi2Jiaf0NeNzGkv6dfJc5Y7qpB_smaw2le1pWjNM-QT9PBkAsv9HV7d6lVNy67vPvpEwAQ8yzNIUBknmhGOm02rak5_L4wng1S70V-UzEggMk5yHowKfnK1Ykg6ySbRS-zl28fHzfuCrH9O6WCQ8V1Zr6uRLY3Afdp-woyD3J58hvibrLSokrqTMOfhBgDlEL2nVAKwsPzbyIlZqKLr1JguUQGh6RLNNjo_rjU9b3MDKe5nO-47q45Augqfa5pt3kECIdyw", "e": "AQAB"}, {"kty": "EC", "kid": "e1", "crv": "P-256", "x": "dAXWgYBipK1imdEacGwZpT9rncU928e6RowaGwMsomQ", "y": "zsNPqVvdGmkRPChBxp8LKqkyT-tyr1bJujdHiYxEnBM"}, {"kty": "OKP", "kid": "d1", "crv": "Ed25519", "x": "9vAot1846keuhLqzwhFyXtdvOBltT3HnEEIVgymxzcA"}]})";
// A token the set verifies (RS256; iss kIssuer, aud orders, exp 2030).
inline constexpr std::string_view kToken = "eyJhbGciOiJSUzI1NiIsImtpZCI6InIxIiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL2F1dGguZXhhbXBsZS5jb20iLCJzdWIiOiJhbGljZSIsImF1ZCI6WyJvcmRlcnMiLCJvdGhlciJdLCJleHAiOjE5MDAwMDAwMDAsIm5iZiI6MTcwMDAwMDAwMCwicm9sZXMiOlsib3JkZXItYWRtaW4iXSwic2NvcGUiOiJyZWFkIHdyaXRlIn0.OHGyQQKd1cYTgkcf__nYExQHO_I_NhVaIXBf4VHC9nT6btOsfxembzdOrMv8k0iamMjOsx6lbAIU6qgvMqOhewbA3C1R97jIpLnonKDDUAhDdyxZpstZWUugvoTWNgBG3NxY4vWzmFeo0z97qg6biI-itQYTj2ifV6csz25HUbVQTS1gk1qcCUG0M9lbipP_VeDKnw-uTmMwTrdCaABv7YqtrLNZD4qxXRLK_hVd2AfIYYODPJHTg0OqQQ6jqC3tb630HU03eAdyVN3CknUqx8zRQFuz3m3m1W4LHsoVpK9nud679S-47fILwIT6DsHSLCUx00f2Mbn2fFst7g835A";

}  // namespace outrigger::fuzz
