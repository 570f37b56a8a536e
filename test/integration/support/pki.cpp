#include "support/pki.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace testing_support {

namespace {

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test PKI: ") + what);
}

EVP_PKEY* new_key() {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  check(key != nullptr, "EC key generation");
  return key;
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  check(ext != nullptr, "extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `key` named `cn`, signed by issuer/issuer_key (itself when null).
X509* make_cert(EVP_PKEY* key, const std::string& cn, X509* issuer, EVP_PKEY* issuer_key, std::chrono::hours from,
                std::chrono::hours to) {
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert), static_cast<long>(from.count()) * 3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), static_cast<long>(to.count()) * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name);
  add_ext(cert, issuer ? issuer : cert, NID_subject_key_identifier, "hash");
  if (!issuer) {
    add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(cert, issuer, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(cert, issuer, NID_key_usage, "critical,digitalSignature");
    add_ext(cert, issuer, NID_ext_key_usage, "serverAuth,clientAuth");
    add_ext(cert, issuer, NID_authority_key_identifier, "keyid:always");
  }
  check(X509_sign(cert, issuer_key ? issuer_key : key, EVP_sha256()) > 0, "signing");
  return cert;
}

std::string pem_of(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

std::string pem_of(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

}  // namespace

struct TestPki::Impl {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  ~Impl() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

TestPki::TestPki(const std::string& name) : impl_(new Impl) {
  char tmpl[] = "/tmp/outrigger-pki.XXXXXX";
  check(::mkdtemp(tmpl) != nullptr, "mkdtemp");
  dir_ = tmpl;
  impl_->key = new_key();
  impl_->cert = make_cert(impl_->key, name, nullptr, nullptr, std::chrono::hours(-1), std::chrono::hours(24 * 30));
  ca_path_ = dir_ + "/ca.crt";
  write_file_atomically(ca_path_, pem_of(impl_->cert));
}

TestPki::~TestPki() {
  delete impl_;
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::pair<std::string, std::string> TestPki::issue_pem(const LeafOptions& o) {
  EVP_PKEY* key = new_key();
  const std::string cn = !o.uris.empty() ? o.uris.front() : !o.dns.empty() ? o.dns.front() : "leaf";
  X509* cert = make_cert(key, cn.substr(0, 64), impl_->cert, impl_->key, o.not_before, o.not_after);
  std::string san;
  // Appended piece by piece: `"," + string` trips GCC 12's -O2 -Wstringop-overflow false positive.
  auto add = [&](std::string_view kind, const std::string& name) {
    if (!san.empty()) san += ',';
    san += kind;
    san += name;
  };
  for (const auto& u : o.uris) add("URI:", u);
  for (const auto& d : o.dns) add("DNS:", d);
  if (!san.empty()) {
    add_ext(cert, impl_->cert, NID_subject_alt_name, san);
    check(X509_sign(cert, impl_->key, EVP_sha256()) > 0, "signing");
  }
  auto out = std::make_pair(pem_of(cert), pem_of(key));
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

TestPki::Leaf TestPki::issue(const std::string& file, const LeafOptions& o) {
  auto [cert, key] = issue_pem(o);
  Leaf leaf{dir_ + "/" + file + ".crt", dir_ + "/" + file + ".key"};
  write_file_atomically(leaf.cert, cert);
  write_file_atomically(leaf.key, key);
  return leaf;
}

void write_file_atomically(const std::string& path, const std::string& contents) {
  const auto tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << contents;
    check(static_cast<bool>(out), "write");
  }
  std::filesystem::rename(tmp, path);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void SecretVolume::update(const std::string& cert_pem, const std::string& key_pem, const std::string& ca_pem) {
  namespace fs = std::filesystem;
  fs::create_directories(dir_);
  const auto version = "..v" + std::to_string(++version_);
  fs::create_directory(dir_ + "/" + version);
  write_file_atomically(dir_ + "/" + version + "/tls.crt", cert_pem);
  write_file_atomically(dir_ + "/" + version + "/tls.key", key_pem);
  write_file_atomically(dir_ + "/" + version + "/ca.crt", ca_pem);
  // The kubelet's swap: a new symlink under a temporary name, renamed over ..data.
  fs::create_directory_symlink(version, dir_ + "/..data_tmp");
  fs::rename(dir_ + "/..data_tmp", dir_ + "/..data");
  for (const char* f : {"tls.crt", "tls.key", "ca.crt"}) {
    std::error_code ec;
    if (!fs::is_symlink(dir_ + "/" + f, ec)) fs::create_symlink(std::string("..data/") + f, dir_ + "/" + f);
  }
  if (version_ > 1) fs::remove_all(dir_ + "/..v" + std::to_string(version_ - 1));
}

}  // namespace testing_support
