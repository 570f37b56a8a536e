// A throwaway PKI for the TLS tests: a CA and the leaf certificates it signs,
// made with the OpenSSL API when a test runs (nothing is committed), written
// as PEM files into a temporary directory that goes away with the object.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace testing_support {

class TestPki {
 public:
  struct Leaf {
    std::string cert, key;  // file paths
  };
  struct LeafOptions {
    std::vector<std::string> uris;  // URI SANs, e.g. spiffe://cluster.local/ns/shop/sa/web
    std::vector<std::string> dns;   // DNS SANs
    std::chrono::hours not_before{-1};  // relative to now
    std::chrono::hours not_after{24};
  };

  // A new EC P-256 CA called `name`, in a new temporary directory.
  explicit TestPki(const std::string& name = "outrigger test CA");
  ~TestPki();
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& ca_path() const { return ca_path_; }  // the CA certificate, PEM

  // A leaf certificate (serverAuth and clientAuth) signed by this CA, written
  // to <dir>/<file>.crt and <dir>/<file>.key.
  Leaf issue(const std::string& file, const LeafOptions& options);
  // The PEM text of a new leaf, not written anywhere.
  std::pair<std::string, std::string> issue_pem(const LeafOptions& options);

 private:
  struct Impl;
  Impl* impl_;
  std::string dir_, ca_path_;
};

// Writes a file so that a reader sees the old or the new contents, never a
// mix: a temporary file next to it, then rename().
void write_file_atomically(const std::string& path, const std::string& contents);
std::string read_file(const std::string& path);

// A Kubernetes-style secret volume: <dir>/..<version>/{tls.crt,tls.key,ca.crt},
// a `..data` symlink to the current version and tls.crt -> ..data/tls.crt and
// so on. update() writes a new version and swaps `..data` atomically, as the
// kubelet does.
class SecretVolume {
 public:
  explicit SecretVolume(std::string dir) : dir_(std::move(dir)) {}
  void update(const std::string& cert_pem, const std::string& key_pem, const std::string& ca_pem);
  std::string cert() const { return dir_ + "/tls.crt"; }
  std::string key() const { return dir_ + "/tls.key"; }
  std::string ca() const { return dir_ + "/ca.crt"; }

 private:
  std::string dir_;
  int version_ = 0;
};

}  // namespace testing_support
