// `outrigger inject`: adds the sidecar to Kubernetes manifests, as
// `istioctl kube-inject` and `linkerd inject` do. Every pod template in the
// input (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob,
// inside a `List` or in a multi-document file) gets:
//   - `outrigger-init`: an init container running `outrigger iptables`
//     with only NET_ADMIN and NET_RAW;
//   - `outrigger`: the proxy, as a native sidecar (an init container with
//     `restartPolicy: Always` and a startup probe; Kubernetes >= 1.29) or,
//     with `classic`, as the first container with a postStart hook
//     (`outrigger wait`) that holds the application until the proxy is ready;
//   - its config from a ConfigMap and its certificates from a Secret;
//   - Prometheus scrape annotations.
// Everything else is kept as it was (comments are not: YAML is re-emitted).
// Injecting twice changes nothing; `outrigger.io/inject: disabled` opts out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace outrigger::kube {

struct InjectOptions {
  bool classic = false;
  std::string image;                          // default: kDefaultImage
  std::string config_map = "outrigger-config";  // key outrigger.yaml
  std::string cert_secret = "outrigger-certs";  // keys tls.crt, tls.key, ca.crt
  std::uint32_t proxy_uid = 2102;
  std::uint16_t admin_port = 9901;
  std::uint16_t inbound_port = 15006;
  std::uint16_t outbound_port = 15001;
};

struct InjectResult {
  std::string yaml;                // the manifests, documents separated by `---`
  std::vector<std::string> notes;  // what was skipped and why ("Deployment/web: ...")
  std::string error;               // not empty: nothing was written ("FILE:LINE:COLUMN: ...")
};

// `source` names the input in errors ("-" for stdin).
InjectResult inject(const std::string& input, const InjectOptions& options, const std::string& source = "-");

// The subcommand: `outrigger inject [options]`; argv[0] is "inject".
int inject_main(int argc, char** argv);

}  // namespace outrigger::kube
