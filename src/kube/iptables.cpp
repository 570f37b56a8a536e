#include "outrigger/kube/iptables.hpp"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <sstream>

extern char** environ;

namespace outrigger::kube {

namespace po = boost::program_options;
namespace ip = boost::asio::ip;

namespace {

constexpr const char* kInbound = "OUTRIGGER_INBOUND";
constexpr const char* kInRedirect = "OUTRIGGER_IN_REDIRECT";
constexpr const char* kOutput = "OUTRIGGER_OUTPUT";
constexpr const char* kRedirect = "OUTRIGGER_REDIRECT";

bool is_v6(const std::string& cidr) { return cidr.find(':') != std::string::npos; }

// One rule: `binary -t nat <args...>`.
std::vector<std::string> nat(const std::string& binary, std::initializer_list<std::string> args) {
  std::vector<std::string> out{binary, "-w", "-t", "nat"};
  out.insert(out.end(), args);
  return out;
}

// Runs argv to its end, its output (stdout and stderr) into *out; the exit code, or -1.
int run(const std::vector<std::string>& argv, std::string* out) {
  int pipefd[2];
  if (::pipe(pipefd) != 0) return -1;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipefd[0]);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipefd[1]);
  if (rc != 0) {
    ::close(pipefd[0]);
    if (out) *out = argv[0] + ": cannot run it";
    return -1;
  }
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0)
    if (out) out->append(buf, static_cast<std::size_t>(n));
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool have(const std::string& program) {
  std::string ignored;
  return run({program, "--version"}, &ignored) == 0;
}

// The rules a backend already holds, by its -save tool ("-A" lines).
int rule_count(const std::string& save) {
  std::string out;
  if (run({save}, &out) != 0) return -1;
  int n = 0;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("-A ")) ++n;
  return n;
}

std::string shell_line(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    const bool plain = a.find_first_of(" '\"$*!") == std::string::npos && !a.empty();
    s += plain ? a : "'" + a + "'";
  }
  return s;
}

}  // namespace

std::string check_cidrs(const std::vector<std::string>& cidrs) {
  for (const auto& c : cidrs) {
    boost::system::error_code ec;
    if (is_v6(c)) {
      (void)ip::make_network_v6(c, ec);
    } else {
      (void)ip::make_network_v4(c, ec);
    }
    if (ec) return "--exclude-outbound-cidrs: '" + c + "' is not an address range (such as 10.0.0.0/8 or 2001:db8::/32)";
  }
  return {};
}

std::vector<Command> install_commands(const Interception& o, const std::string& b, bool ipv6) {
  std::vector<Command> out;
  for (const char* chain : {kInbound, kInRedirect, kOutput, kRedirect}) {
    out.push_back({nat(b, {"-N", chain}), true});  // exists already when run again
    out.push_back({nat(b, {"-F", chain})});
  }
  // Where redirected connections go.
  out.push_back({nat(b, {"-A", kInRedirect, "-p", "tcp", "-j", "REDIRECT", "--to-ports", std::to_string(o.inbound_port)})});
  out.push_back({nat(b, {"-A", kRedirect, "-p", "tcp", "-j", "REDIRECT", "--to-ports", std::to_string(o.outbound_port)})});

  // Inbound: everything to the pod but the proxy's own ports and the excluded ones.
  std::vector<std::uint16_t> keep_in{o.inbound_port, o.outbound_port, o.admin_port};
  keep_in.insert(keep_in.end(), o.exclude_inbound_ports.begin(), o.exclude_inbound_ports.end());
  for (auto p : keep_in) out.push_back({nat(b, {"-A", kInbound, "-p", "tcp", "--dport", std::to_string(p), "-j", "RETURN"})});
  out.push_back({nat(b, {"-A", kInbound, "-p", "tcp", "-j", kInRedirect})});

  // Outbound: the proxy's own connections, loopback (the application talking
  // to itself, the proxy to the application), and the exclusions go as they are.
  if (o.proxy_mark)
    out.push_back({nat(b, {"-A", kOutput, "-m", "mark", "--mark", std::to_string(o.proxy_mark), "-j", "RETURN"})});
  out.push_back({nat(b, {"-A", kOutput, "-m", "owner", "--uid-owner", std::to_string(o.proxy_uid), "-j", "RETURN"})});
  out.push_back({nat(b, {"-A", kOutput, "-o", "lo", "-j", "RETURN"})});
  out.push_back({nat(b, {"-A", kOutput, "-d", ipv6 ? "::1/128" : "127.0.0.0/8", "-j", "RETURN"})});
  for (auto p : o.exclude_outbound_ports)
    out.push_back({nat(b, {"-A", kOutput, "-p", "tcp", "--dport", std::to_string(p), "-j", "RETURN"})});
  for (const auto& c : o.exclude_outbound_cidrs)
    if (is_v6(c) == ipv6) out.push_back({nat(b, {"-A", kOutput, "-d", c, "-j", "RETURN"})});
  out.push_back({nat(b, {"-A", kOutput, "-p", "tcp", "-j", kRedirect})});

  // The entries, once each.
  out.push_back({nat(b, {"-C", "PREROUTING", "-p", "tcp", "-j", kInbound}), true,
                 nat(b, {"-A", "PREROUTING", "-p", "tcp", "-j", kInbound})});
  out.push_back({nat(b, {"-C", "OUTPUT", "-p", "tcp", "-j", kOutput}), true,
                 nat(b, {"-A", "OUTPUT", "-p", "tcp", "-j", kOutput})});
  return out;
}

std::vector<Command> cleanup_commands(const std::string& b) {
  std::vector<Command> out;
  out.push_back({nat(b, {"-D", "PREROUTING", "-p", "tcp", "-j", kInbound}), true});
  out.push_back({nat(b, {"-D", "OUTPUT", "-p", "tcp", "-j", kOutput}), true});
  for (const char* chain : {kInbound, kOutput, kInRedirect, kRedirect}) out.push_back({nat(b, {"-F", chain}), true});
  for (const char* chain : {kInbound, kOutput, kInRedirect, kRedirect}) out.push_back({nat(b, {"-X", chain}), true});
  return out;
}

int iptables_main(int argc, char** argv) {
  Interception o;
  std::string mode = "auto", exclude_in, exclude_out, cidrs;
  bool dry_run = false, cleanup = false, no_ipv6 = false;
  po::options_description opts("outrigger iptables: the NAT rules that send a pod's TCP through its sidecar");
  opts.add_options()("help,h", "show this help")
      ("inbound-port", po::value(&o.inbound_port)->default_value(o.inbound_port), "the inbound listener")
      ("outbound-port", po::value(&o.outbound_port)->default_value(o.outbound_port), "the outbound listener")
      ("admin-port", po::value(&o.admin_port)->default_value(o.admin_port), "the admin listener (never redirected)")
      ("proxy-uid", po::value(&o.proxy_uid)->default_value(o.proxy_uid), "the proxy's UID: its traffic is never redirected")
      ("proxy-mark", po::value(&o.proxy_mark)->default_value(0), "the proxy's socket_mark, if it sets one (0: none)")
      ("exclude-inbound-ports", po::value(&exclude_in), "comma-separated ports that reach the application directly")
      ("exclude-outbound-ports", po::value(&exclude_out), "comma-separated ports the application reaches directly")
      ("exclude-outbound-cidrs", po::value(&cidrs), "comma-separated ranges the application reaches directly")
      ("no-ipv6", po::bool_switch(&no_ipv6), "IPv4 only (no ip6tables rules)")
      ("mode", po::value(&mode)->default_value(mode), "iptables backend: auto, nft or legacy")
      ("dry-run", po::bool_switch(&dry_run), "print the commands instead of running them")
      ("cleanup", po::bool_switch(&cleanup), "remove the rules");
  po::variables_map vm;
  auto split = [](const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string item; std::getline(in, item, ',');)
      if (!item.empty()) out.push_back(item);
    return out;
  };
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
    for (const auto* ports : {&exclude_in, &exclude_out}) {
      auto& into = ports == &exclude_in ? o.exclude_inbound_ports : o.exclude_outbound_ports;
      for (const auto& p : split(*ports)) {
        const auto v = std::stoul(p);
        if (v == 0 || v > 65535) throw std::invalid_argument(p);
        into.push_back(static_cast<std::uint16_t>(v));
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "outrigger iptables: " << e.what() << "\n" << opts;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << opts;
    return 0;
  }
  o.exclude_outbound_cidrs = split(cidrs);
  if (auto why = check_cidrs(o.exclude_outbound_cidrs); !why.empty()) {
    std::cerr << "outrigger iptables: " << why << "\n";
    return 2;
  }
  if (mode != "auto" && mode != "nft" && mode != "legacy") {
    std::cerr << "outrigger iptables: --mode must be auto, nft or legacy\n";
    return 2;
  }
  o.ipv6 = !no_ipv6;

  // The backend: the one the node already uses (more rules in it), as
  // Kubernetes' iptables-wrapper decides; nft when neither holds any, or
  // whatever `iptables` is when the variants are not installed.
  Backend backend{"default", "iptables", "ip6tables"};
  std::string why_backend = "iptables-nft and iptables-legacy are not installed";
  const bool nft = have("iptables-nft"), legacy = have("iptables-legacy");
  if (mode == "nft" || (mode == "auto" && nft && !legacy)) {
    backend = {"nft", "iptables-nft", "ip6tables-nft"};
    why_backend = mode == "nft" ? "asked for" : "the only one installed";
  } else if (mode == "legacy" || (mode == "auto" && legacy && !nft)) {
    backend = {"legacy", "iptables-legacy", "ip6tables-legacy"};
    why_backend = mode == "legacy" ? "asked for" : "the only one installed";
  } else if (nft && legacy) {
    const int n = rule_count("iptables-nft-save"), l = rule_count("iptables-legacy-save");
    backend = l > n ? Backend{"legacy", "iptables-legacy", "ip6tables-legacy"}
                    : Backend{"nft", "iptables-nft", "ip6tables-nft"};
    why_backend = "rules already there: nft " + std::to_string(n) + ", legacy " + std::to_string(l);
  }
  std::cout << "# backend: " << backend.name << " (" << why_backend << ")\n";

  std::vector<Command> commands;
  for (const bool v6 : {false, true}) {
    if (v6 && !o.ipv6) continue;
    const auto& binary = v6 ? backend.ip6tables : backend.iptables;
    auto c = cleanup ? cleanup_commands(binary) : install_commands(o, binary, v6);
    commands.insert(commands.end(), c.begin(), c.end());
  }
  int failures = 0;
  for (const auto& c : commands) {
    if (dry_run) {
      std::cout << shell_line(c.argv);
      if (c.otherwise) std::cout << " || " << shell_line(*c.otherwise);
      if (c.may_fail && !c.otherwise) std::cout << " || true";
      std::cout << "\n";
      continue;
    }
    std::string out;
    int rc = run(c.argv, &out);
    // A deletion that found its rule may find another copy (an older install): repeat.
    if (rc == 0 && c.argv.size() > 4 && c.argv[4] == "-D")
      while (rc == 0) rc = run(c.argv, &out);
    else if (rc != 0 && c.otherwise)
      rc = run(*c.otherwise, &out);
    else if (rc != 0 && c.may_fail)
      rc = 0;
    if (rc != 0 && !(c.may_fail && !c.otherwise)) {
      std::cerr << "outrigger iptables: " << shell_line(c.otherwise && rc != 0 ? *c.otherwise : c.argv) << ": " << out;
      ++failures;
    }
  }
  if (failures) return 1;
  if (!dry_run) std::cout << (cleanup ? "# removed\n" : "# installed\n");
  return 0;
}

}  // namespace outrigger::kube
