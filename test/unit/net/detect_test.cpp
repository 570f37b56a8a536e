#include "outrigger/net/detect.hpp"

#include <gtest/gtest.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <memory>
#include <string>

namespace outrigger::net {
namespace {

// A real ClientHello, as OpenSSL's client writes it (nothing answers it).
std::string client_hello(const char* sni, const unsigned char* alpn = nullptr, unsigned alpn_len = 0) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), in, out);
  if (sni) SSL_set_tlsext_host_name(ssl.get(), sni);
  if (alpn) SSL_set_alpn_protos(ssl.get(), alpn, alpn_len);
  SSL_set_connect_state(ssl.get());
  SSL_do_handshake(ssl.get());  // wants to read: the hello is in `out`
  char* data = nullptr;
  const long n = BIO_get_mem_data(out, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

TEST(Detect, AnHttp1RequestLine) {
  EXPECT_EQ(detect("GET / HTTP/1.1\r\nHost: x\r\n\r\n").kind, Detected::http1);
  EXPECT_EQ(detect("OPTIONS * HTTP/1.0\r\n").kind, Detected::http1);
  EXPECT_EQ(detect("PATCH /a?b=c HTTP/1.1\r\n").kind, Detected::http1);
}

TEST(Detect, APrefixOfARequestLineWantsMore) {
  for (std::string_view p : {"G", "GET", "GET ", "GET /x", "GET /x ", "GET /x HTTP/1", "GET /x HTTP/1.1", "GET /x HTTP/1.1\r"})
    EXPECT_EQ(detect(p).kind, Detected::need_more) << p;
}

TEST(Detect, OtherTextIsOpaque) {
  EXPECT_EQ(detect("*1\r\n$4\r\nPING\r\n").kind, Detected::opaque);  // Redis
  EXPECT_EQ(detect("PING\r\n").kind, Detected::opaque);             // a token, then no target
  EXPECT_EQ(detect("EHLO mail.test\r\n").kind, Detected::opaque);   // SMTP: no version
  EXPECT_EQ(detect("GET / HTTP/2.0\r\n").kind, Detected::opaque);
  EXPECT_EQ(detect("GET  / HTTP/1.1\r\n").kind, Detected::opaque);  // an empty target
  EXPECT_EQ(detect(std::string("\x00\x01\x02", 3)).kind, Detected::opaque);
  EXPECT_EQ(detect(std::string(40, 'A')).kind, Detected::opaque);  // no method is this long
}

TEST(Detect, TheHttp2Preface) {
  EXPECT_EQ(detect("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").kind, Detected::http2);
  EXPECT_EQ(detect("PRI * HTTP/2.0\r\n").kind, Detected::need_more);  // not HTTP/1.x, not yet all of it
}

TEST(Detect, ATlsClientHelloWithItsServerNameAndAlpn) {
  static const unsigned char alpn[] = "\x02h2\x08http/1.1";
  const auto hello = client_hello("API.Example.com", alpn, sizeof alpn - 1);
  const auto d = detect(hello);
  EXPECT_EQ(d.kind, Detected::tls);
  EXPECT_EQ(d.sni, "api.example.com");
  EXPECT_EQ(d.alpn, "h2,http/1.1");
}

TEST(Detect, AClientHelloWithoutExtensionsWeLookFor) {
  const auto d = detect(client_hello(nullptr));
  EXPECT_EQ(d.kind, Detected::tls);
  EXPECT_EQ(d.sni, "");
  EXPECT_EQ(d.alpn, "");
}

TEST(Detect, APartialClientHelloWantsMore) {
  const auto hello = client_hello("a.test");
  for (std::size_t n : {std::size_t{1}, std::size_t{5}, std::size_t{20}, hello.size() - 1})
    EXPECT_EQ(detect(std::string_view(hello).substr(0, n)).kind, Detected::need_more) << n;
}

TEST(Detect, ATlsRecordThatIsNotAClientHelloIsOpaque) {
  EXPECT_EQ(detect(std::string("\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", 10)).kind, Detected::opaque);
  EXPECT_EQ(detect(std::string("\x16\x09\x01\x00\x05\x01", 6)).kind, Detected::opaque);
}

TEST(Detect, ServerNamePatterns) {
  EXPECT_TRUE(server_name_matches("a.test", "a.test"));
  EXPECT_FALSE(server_name_matches("a.test", "b.test"));
  EXPECT_TRUE(server_name_matches("*.b.test", "api.b.test"));
  EXPECT_TRUE(server_name_matches("*.b.test", "x.y.b.test"));
  EXPECT_FALSE(server_name_matches("*.b.test", "b.test"));
  EXPECT_FALSE(server_name_matches("*.b.test", "evilb.test"));
}

}  // namespace
}  // namespace outrigger::net
