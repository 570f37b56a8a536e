// `outrigger iptables`: the NAT rules that send a pod's traffic through its
// sidecar (what Istio's and Linkerd's init containers install). Inbound TCP
// to the pod is redirected to the inbound listener, outbound TCP from the
// application to the outbound listener; the proxy's own traffic (its UID,
// and its mark when it has one), loopback, and the excluded ports and
// ranges are left alone. IPv4 with `iptables`, IPv6 with `ip6tables`.
//
// The rules live in chains of their own (OUTRIGGER_*), entered from
// PREROUTING and OUTPUT of the nat table. Installing flushes and refills
// those chains and adds each entry jump only if it is not there, so running
// it twice leaves one set; cleanup removes the jumps and the chains.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace outrigger::kube {

struct Interception {
  std::uint16_t inbound_port = 15006;   // the inbound listener (original_destination)
  std::uint16_t outbound_port = 15001;  // the outbound listener
  std::uint16_t admin_port = 9901;      // never redirected inbound (probes, scrapes)
  std::uint32_t proxy_uid = 2102;       // the proxy's connections are never redirected
  std::uint32_t proxy_mark = 0;         // ... nor those it marks (its socket_mark); 0: none
  std::vector<std::uint16_t> exclude_inbound_ports;
  std::vector<std::uint16_t> exclude_outbound_ports;
  std::vector<std::string> exclude_outbound_cidrs;  // "10.0.0.0/8", "2001:db8::/32"; each family gets its own
  bool ipv6 = true;
};

// The iptables binaries of one backend.
struct Backend {
  std::string name;  // "nft", "legacy", or "default" (plain `iptables`)
  std::string iptables, ip6tables;
};

// One command: argv, and whether its failure is expected (a check, or a
// chain that may not exist).
struct Command {
  std::vector<std::string> argv;
  bool may_fail = false;
  // A check: when it succeeds, `then` is skipped (idempotent appends).
  std::optional<std::vector<std::string>> otherwise;
};

// What install and cleanup run, in order, for one family.
std::vector<Command> install_commands(const Interception& options, const std::string& binary, bool ipv6);
std::vector<Command> cleanup_commands(const std::string& binary);

// Parses and checks the CIDRs; "" when they are fine, else the first problem.
std::string check_cidrs(const std::vector<std::string>& cidrs);

// The subcommand: `outrigger iptables [options]`; argv[0] is "iptables".
int iptables_main(int argc, char** argv);

}  // namespace outrigger::kube
