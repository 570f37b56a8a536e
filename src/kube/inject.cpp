#include "outrigger/kube/inject.hpp"

#include <yaml-cpp/yaml.h>

#include <boost/program_options.hpp>
#include <charconv>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "outrigger/core/version.hpp"
#include "outrigger/kube/iptables.hpp"

namespace outrigger::kube {

namespace {

constexpr const char* kProxy = "outrigger";
constexpr const char* kInit = "outrigger-init";
constexpr const char* kBinary = "/usr/local/bin/outrigger";
constexpr const char* kConfigDir = "/etc/outrigger/config";
constexpr const char* kCertDir = "/etc/outrigger/certs";

// --- Building nodes -------------------------------------------------------
// A string we add is emitted quoted when it would otherwise read as a number
// or a boolean; a number or boolean is tagged "?" (a plain scalar) so that
// it stays one.
YAML::Node str(const std::string& v) { return YAML::Node(v); }
YAML::Node num(long v) {
  YAML::Node n(std::to_string(v));
  n.SetTag("?");
  return n;
}
YAML::Node boolean(bool v) {
  YAML::Node n(v ? "true" : "false");
  n.SetTag("?");
  return n;
}
YAML::Node map(std::initializer_list<std::pair<const char*, YAML::Node>> entries) {
  YAML::Node m(YAML::NodeType::Map);
  for (const auto& [k, v] : entries) m[k] = v;
  return m;
}
YAML::Node seq(std::initializer_list<YAML::Node> items) {
  YAML::Node s(YAML::NodeType::Sequence);
  for (const auto& v : items) s.push_back(v);
  return s;
}
YAML::Node strings(const std::vector<std::string>& items) {
  YAML::Node s(YAML::NodeType::Sequence);
  for (const auto& v : items) s.push_back(str(v));
  return s;
}

// --- Emitting -------------------------------------------------------------
// yaml-cpp drops the quotes of a quoted scalar ("true", "8080") when it
// emits a node, which would turn Kubernetes strings into booleans and
// numbers; this walk keeps them strings.
bool reads_as_non_string(const std::string& v) {
  if (v.empty() || v == "~") return true;
  std::string lower;
  for (char c : v) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* word : {"null", "true", "false", "yes", "no", "on", "off", "y", "n", ".inf", "-.inf", "+.inf", ".nan"})
    if (lower == word) return true;
  // A number (1, -2.5, 1e3, 0x1F, 1_000, 12:30): quoted when we add it as a string.
  const char first = v[0];
  const bool digit_next = v.size() > 1 && std::isdigit(static_cast<unsigned char>(v[1]));
  if (!std::isdigit(static_cast<unsigned char>(first)) && !((first == '-' || first == '+' || first == '.') && digit_next))
    return false;
  return v.find_first_not_of("0123456789abcdefABCDEF.+-_:xXoO") == std::string::npos;
}

// A block literal (`|`) keeps a multi-line value (a ConfigMap's file) readable;
// only where it round-trips exactly: one final newline, no leading blank.
bool literal_safe(const std::string& v) {
  if (v.size() < 2 || v.back() != '\n' || v[v.size() - 2] == '\n') return false;
  if (v.front() == ' ' || v.front() == '\n') return false;
  for (char c : v)
    if (c == '\r' || (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t')) return false;
  return v.find('\n') != v.size() - 1;
}

void emit(YAML::Emitter& out, const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      out << YAML::Null;
      break;
    case YAML::NodeType::Scalar: {
      const auto& v = n.Scalar();
      if (n.Tag() == "?") {
        out << v;  // plain in the input: stays plain (yaml-cpp quotes it if it must)
      } else if (literal_safe(v)) {
        out << YAML::Literal << v.substr(0, v.size() - 1);  // `|` adds the final newline back
      } else if (reads_as_non_string(v) || v.find('\n') != std::string::npos) {
        out << YAML::DoubleQuoted << v;
      } else {
        out << v;
      }
      break;
    }
    case YAML::NodeType::Sequence:
      if (n.size() == 0) out << YAML::Flow;  // `[]`
      out << YAML::BeginSeq;
      for (const auto& item : n) emit(out, item);
      out << YAML::EndSeq;
      break;
    case YAML::NodeType::Map:
      if (n.size() == 0) out << YAML::Flow;  // `{}`
      out << YAML::BeginMap;
      for (const auto& kv : n) {
        out << YAML::Key;
        emit(out, kv.first);
        out << YAML::Value;
        emit(out, kv.second);
      }
      out << YAML::EndMap;
      break;
  }
}

// --- Reading --------------------------------------------------------------
const YAML::Node child(const YAML::Node& n, const char* key) {
  if (!n || !n.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  return n[key];
}
std::string scalar(const YAML::Node& n, const char* key) {
  const auto c = child(n, key);
  return c && c.IsScalar() ? c.Scalar() : std::string();
}
// A map member, created when missing (or null).
YAML::Node ensure_map(YAML::Node parent, const char* key) {
  if (!parent[key] || !parent[key].IsMap()) parent[key] = YAML::Node(YAML::NodeType::Map);
  return parent[key];
}

bool has_container(const YAML::Node& spec, const char* list, const char* name) {
  const auto l = child(spec, list);
  if (!l || !l.IsSequence()) return false;
  for (const auto& c : l)
    if (scalar(c, "name") == name) return true;
  return false;
}

// "8081, 9090" -> "8081,9090"; empty on success in *why.
std::string port_list(const std::string& text, std::string* why) {
  std::string out;
  std::istringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    const auto b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    if (b == std::string::npos) continue;
    item = item.substr(b, e - b + 1);
    unsigned v = 0;
    const auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec != std::errc() || p != item.data() + item.size() || v == 0 || v > 65535) {
      *why = "'" + item + "' is not a port";
      return {};
    }
    if (!out.empty()) out += ',';
    out += item;
  }
  return out;
}

// --- The sidecar ----------------------------------------------------------
struct PodChoices {
  std::string config_map, cert_secret;
  std::vector<std::string> iptables_args;
};

YAML::Node http_probe(const char* path, std::uint16_t port, long period, long failures) {
  return map({{"httpGet", map({{"path", str(path)}, {"port", num(port)}})},
              {"periodSeconds", num(period)},
              {"failureThreshold", num(failures)}});
}

YAML::Node init_container(const InjectOptions& o, const PodChoices& p) {
  return map({
      {"name", str(kInit)},
      {"image", str(o.image)},
      {"imagePullPolicy", str("IfNotPresent")},
      {"command", seq({str(kBinary)})},
      {"args", strings(p.iptables_args)},
      {"resources", map({{"requests", map({{"cpu", str("10m")}, {"memory", str("16Mi")}})},
                         {"limits", map({{"cpu", str("100m")}, {"memory", str("64Mi")}})}})},
      {"securityContext",
       map({{"runAsUser", num(0)},
            {"runAsNonRoot", boolean(false)},
            {"readOnlyRootFilesystem", boolean(true)},
            {"allowPrivilegeEscalation", boolean(false)},
            {"privileged", boolean(false)},
            {"capabilities", map({{"add", seq({str("NET_ADMIN"), str("NET_RAW")})}, {"drop", seq({str("ALL")})}})}})},
      // iptables takes its lock in /run/xtables.lock: a writable /run, the root stays read-only.
      {"volumeMounts", seq({map({{"name", str("outrigger-run")}, {"mountPath", str("/run")}})})},
  });
}

YAML::Node proxy_container(const InjectOptions& o) {
  YAML::Node c = map({
      {"name", str(kProxy)},
      {"image", str(o.image)},
      {"imagePullPolicy", str("IfNotPresent")},
      {"args", strings({"run", "-c", std::string(kConfigDir) + "/outrigger.yaml"})},
  });
  if (!o.classic) c["restartPolicy"] = str("Always");  // a native sidecar
  c["ports"] = seq({map({{"name", str("outrigger-admin")}, {"containerPort", num(o.admin_port)}, {"protocol", str("TCP")}})});
  // Native: the kubelet starts the next container once the startup probe passes.
  if (!o.classic) c["startupProbe"] = http_probe("/ready", o.admin_port, 1, 120);
  c["readinessProbe"] = http_probe("/ready", o.admin_port, 2, 3);
  c["livenessProbe"] = http_probe("/live", o.admin_port, 10, 3);
  // Classic: the kubelet runs the postStart hook before it starts the next
  // container, so the application starts once the proxy is ready
  // (Istio's holdApplicationUntilProxyStarts).
  if (o.classic)
    c["lifecycle"] = map({{"postStart",
                           map({{"exec", map({{"command", strings({kBinary, "wait", "--admin-port",
                                                                     std::to_string(o.admin_port), "--timeout", "120s"})}})}})}});
  c["resources"] = map({{"requests", map({{"cpu", str("100m")}, {"memory", str("64Mi")}})},
                        {"limits", map({{"memory", str("512Mi")}})}});
  c["securityContext"] = map({{"runAsUser", num(o.proxy_uid)},
                              {"runAsGroup", num(o.proxy_uid)},
                              {"runAsNonRoot", boolean(true)},
                              {"readOnlyRootFilesystem", boolean(true)},
                              {"allowPrivilegeEscalation", boolean(false)},
                              {"capabilities", map({{"drop", seq({str("ALL")})}})}});
  c["volumeMounts"] = seq({map({{"name", str("outrigger-config")}, {"mountPath", str(kConfigDir)}, {"readOnly", boolean(true)}}),
                           map({{"name", str("outrigger-certs")}, {"mountPath", str(kCertDir)}, {"readOnly", boolean(true)}})});
  return c;
}

struct Context {
  const InjectOptions& options;
  std::vector<std::string>& notes;
  std::string error;
};

// Adds the sidecar to one pod template (its metadata and spec).
void inject_pod(Context& cx, const YAML::Node& owner_meta, YAML::Node pod, const std::string& what) {
  if (!pod["spec"] || !pod["spec"].IsMap()) {
    cx.notes.push_back(what + ": no pod spec, left as it is");
    return;
  }
  YAML::Node spec = pod["spec"];
  const auto annotations = child(child(pod, "metadata"), "annotations");
  const auto owner_annotations = child(owner_meta, "annotations");
  auto annotation = [&](const char* key) {
    auto v = scalar(annotations, key);
    return v.empty() ? scalar(owner_annotations, key) : v;
  };
  const auto opt_out = annotation("outrigger.io/inject");
  if (opt_out == "disabled" || opt_out == "false") {
    cx.notes.push_back(what + ": outrigger.io/inject: " + opt_out + ", skipped");
    return;
  }
  if (scalar(spec, "hostNetwork") == "true") {
    cx.notes.push_back(what + ": hostNetwork pods share the node's network, skipped");
    return;
  }
  if (has_container(spec, "containers", kProxy) || has_container(spec, "initContainers", kProxy) ||
      has_container(spec, "initContainers", kInit)) {
    cx.notes.push_back(what + ": already injected");
    return;
  }
  const auto& o = cx.options;
  PodChoices p;
  p.config_map = annotation("outrigger.io/config-map");
  if (p.config_map.empty()) p.config_map = o.config_map;
  p.cert_secret = annotation("outrigger.io/cert-secret");
  if (p.cert_secret.empty()) p.cert_secret = o.cert_secret;
  p.iptables_args = {"iptables",        "--proxy-uid",   std::to_string(o.proxy_uid),
                     "--inbound-port",  std::to_string(o.inbound_port),
                     "--outbound-port", std::to_string(o.outbound_port),
                     "--admin-port",    std::to_string(o.admin_port)};
  for (const auto& [key, flag] : {std::pair{"outrigger.io/exclude-inbound-ports", "--exclude-inbound-ports"},
                                  std::pair{"outrigger.io/exclude-outbound-ports", "--exclude-outbound-ports"}}) {
    const auto v = annotation(key);
    if (v.empty()) continue;
    std::string why;
    const auto ports = port_list(v, &why);
    if (!why.empty()) {
      cx.error = what + ": annotation " + key + ": " + why;
      return;
    }
    if (!ports.empty()) p.iptables_args.insert(p.iptables_args.end(), {flag, ports});
  }
  if (const auto cidrs = annotation("outrigger.io/exclude-outbound-cidrs"); !cidrs.empty()) {
    std::vector<std::string> list;
    std::istringstream in(cidrs);
    std::string joined;
    for (std::string item; std::getline(in, item, ',');) {
      item.erase(0, item.find_first_not_of(" \t"));
      item.erase(item.find_last_not_of(" \t") + 1);
      if (item.empty()) continue;
      list.push_back(item);
      joined += (joined.empty() ? "" : ",") + item;
    }
    if (auto why = check_cidrs(list); !why.empty()) {
      cx.error = what + ": annotation outrigger.io/exclude-outbound-cidrs: " + why;
      return;
    }
    if (!joined.empty()) p.iptables_args.insert(p.iptables_args.end(), {"--exclude-outbound-cidrs", joined});
  }

  // Containers: the interception first, then the proxy before anything
  // else runs (native: other init containers' traffic is proxied too).
  YAML::Node inits(YAML::NodeType::Sequence);
  inits.push_back(init_container(o, p));
  if (!o.classic) inits.push_back(proxy_container(o));
  if (spec["initContainers"] && spec["initContainers"].IsSequence())
    for (const auto& c : spec["initContainers"]) inits.push_back(c);
  spec["initContainers"] = inits;
  if (o.classic) {
    YAML::Node containers(YAML::NodeType::Sequence);
    containers.push_back(proxy_container(o));
    if (spec["containers"] && spec["containers"].IsSequence())
      for (const auto& c : spec["containers"]) containers.push_back(c);
    spec["containers"] = containers;
  }
  if (!spec["volumes"] || !spec["volumes"].IsSequence()) spec["volumes"] = YAML::Node(YAML::NodeType::Sequence);
  spec["volumes"].push_back(map({{"name", str("outrigger-config")}, {"configMap", map({{"name", str(p.config_map)}})}}));
  spec["volumes"].push_back(map({{"name", str("outrigger-certs")},
                                 {"secret", map({{"secretName", str(p.cert_secret)}, {"optional", boolean(false)}})}}));
  spec["volumes"].push_back(map({{"name", str("outrigger-run")}, {"emptyDir", map({{"medium", str("Memory")}})}}));

  YAML::Node meta = ensure_map(pod, "metadata");
  YAML::Node ann = ensure_map(meta, "annotations");
  ann["outrigger.io/injected"] = str(o.classic ? "classic" : "native");
  // The application's own scrape annotations win: they say where its metrics are.
  if (!ann["prometheus.io/scrape"]) {
    ann["prometheus.io/scrape"] = str("true");
    ann["prometheus.io/port"] = str(std::to_string(o.admin_port));
    ann["prometheus.io/path"] = str("/metrics");
  } else {
    cx.notes.push_back(what + ": keeps its own prometheus.io annotations");
  }
}

void visit(Context& cx, YAML::Node obj, const std::string& where) {
  if (!obj.IsMap()) return;
  const auto kind = scalar(obj, "kind");
  const auto meta = child(obj, "metadata");
  const auto what = where + kind + "/" + (scalar(meta, "name").empty() ? "?" : scalar(meta, "name"));
  if (kind == "List") {
    if (obj["items"] && obj["items"].IsSequence()) {
      std::size_t i = 0;
      for (auto item : obj["items"]) {
        visit(cx, item, where + "List items[" + std::to_string(i++) + "] ");
        if (!cx.error.empty()) return;
      }
    }
    return;
  }
  if (kind == "Pod") return inject_pod(cx, YAML::Node(), obj, what);
  YAML::Node spec = obj["spec"];
  if (!spec || !spec.IsMap()) return;
  if (kind == "Deployment" || kind == "StatefulSet" || kind == "DaemonSet" || kind == "ReplicaSet" || kind == "Job") {
    if (spec["template"]) inject_pod(cx, meta, spec["template"], what);
  } else if (kind == "CronJob") {
    auto job = spec["jobTemplate"];
    if (job && job.IsMap() && job["spec"] && job["spec"].IsMap() && job["spec"]["template"])
      inject_pod(cx, meta, job["spec"]["template"], what);
  }
  // A classic sidecar outlives the application: the Job completes only when
  // the application ends the proxy.
  if ((kind == "Job" || kind == "CronJob") && cx.options.classic)
    cx.notes.push_back(what + ": a classic sidecar keeps the pod running: the application ends it with "
                              "POST http://127.0.0.1:" + std::to_string(cx.options.admin_port) + "/quitquitquit");
}

}  // namespace

InjectResult inject(const std::string& input, const InjectOptions& options, const std::string& source) {
  InjectResult result;
  InjectOptions o = options;
  if (o.image.empty()) o.image = std::string("localhost/outrigger:") + kVersion;
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(input);
  } catch (const YAML::Exception& e) {
    result.error = source + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) + ": " + e.msg;
    return result;
  }
  Context cx{o, result.notes, {}};
  std::string out;
  for (std::size_t i = 0; i < docs.size(); ++i) {
    auto& doc = docs[i];
    if (doc.IsNull()) continue;
    visit(cx, doc, docs.size() > 1 ? "document " + std::to_string(i + 1) + ": " : "");
    if (!cx.error.empty()) {
      result.error = source + ": " + cx.error;
      return result;
    }
    YAML::Emitter e;
    e.SetIndent(2);
    emit(e, doc);
    if (!out.empty()) out += "---\n";
    out += e.c_str();
    out += "\n";
  }
  result.yaml = std::move(out);
  return result;
}

int inject_main(int argc, char** argv) {
  namespace po = boost::program_options;
  InjectOptions o;
  std::string file = "-";
  po::options_description opts("outrigger inject [options]: print the manifests with the sidecar added");
  opts.add_options()("help,h", "show this help")
      ("filename,f", po::value(&file), "the manifests (YAML; - for stdin, the default)")
      ("classic", po::bool_switch(&o.classic), "a plain container the application waits for, not a native sidecar")
      ("image", po::value(&o.image), "the proxy image (default localhost/outrigger:VERSION)")
      ("config-map", po::value(&o.config_map), "the ConfigMap with outrigger.yaml (pod annotation outrigger.io/config-map)")
      ("cert-secret", po::value(&o.cert_secret), "the Secret with tls.crt, tls.key, ca.crt (outrigger.io/cert-secret)")
      ("proxy-uid", po::value(&o.proxy_uid), "the proxy's UID, exempt from interception")
      ("admin-port", po::value(&o.admin_port), "the admin listener's port (probes, metrics)")
      ("inbound-port", po::value(&o.inbound_port), "the inbound listener's port")
      ("outbound-port", po::value(&o.outbound_port), "the outbound listener's port");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "outrigger inject: " << e.what() << "\n" << opts;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << opts;
    return 0;
  }
  std::string input;
  if (file == "-") {
    input.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      std::cerr << "outrigger inject: cannot read " << file << "\n";
      return 2;
    }
    input.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  auto result = inject(input, o, file);
  if (!result.error.empty()) {
    std::cerr << "outrigger inject: " << result.error << "\n";
    return 2;
  }
  for (const auto& note : result.notes) std::cerr << "# " << note << "\n";
  std::cout << result.yaml;
  return 0;
}

}  // namespace outrigger::kube
