// The command line: `outrigger run|validate -c FILE`, `outrigger iptables|inject|wait ...`, `outrigger version`.
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/program_options.hpp>
#include <iostream>

#include "outrigger/config/loader.hpp"
#include "outrigger/core/version.hpp"
#include "outrigger/kube/inject.hpp"
#include "outrigger/kube/iptables.hpp"
#include "outrigger/kube/wait.hpp"
#include "outrigger/server/server.hpp"
#include "outrigger/server/snapshot.hpp"
#include "outrigger/server/upgrade.hpp"

namespace po = boost::program_options;
using namespace outrigger;

namespace {

constexpr const char* kUsage =
    "usage: outrigger run -c FILE [--upgrade-socket PATH] [--upgrade-from PATH]\n"
    "                                   run the proxy (--upgrade-from: take over the listening sockets of the\n"
    "                                   proxy listening on PATH, which drains and exits)\n"
    "       outrigger validate -c FILE  check a config; exit 2 and list every problem if it is invalid\n"
    "       outrigger iptables [OPTIONS]  install (or --cleanup, --dry-run) the pod's interception rules\n"
    "       outrigger inject [-f FILE] [--classic]  print Kubernetes manifests with the sidecar added\n"
    "       outrigger wait [--timeout T]  wait until the proxy's /ready answers (a postStart hook)\n"
    "       outrigger version           print the version\n";

// Loads and fully checks a config (including filters and endpoint names);
// prints the problems as FILE:LINE:COLUMN: message.
std::optional<config::Config> load_and_check(const std::string& file) {
  auto loaded = config::load_file(file);
  if (!loaded.ok()) {
    for (const auto& e : loaded.errors) std::cerr << e.to_string() << "\n";
    return std::nullopt;
  }
  observability::Stats stats(1);
  server::KeptUpstreams kept;
  auto built = server::build_snapshot(*loaded.config, stats, 0, kept);
  if (!built.snapshot) {
    for (const auto& e : built.errors) std::cerr << e << "\n";
    return std::nullopt;
  }
  return std::move(loaded.config);
}

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_logger_mt("outrigger");
  logger->set_pattern("[%Y-%m-%dT%H:%M:%S.%e] [%l] %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace

int main(int argc, char** argv) {
  // Subcommands with options of their own.
  if (argc >= 2 && std::string_view(argv[1]) == "iptables") return kube::iptables_main(argc - 1, argv + 1);
  if (argc >= 2 && std::string_view(argv[1]) == "inject") return kube::inject_main(argc - 1, argv + 1);
  if (argc >= 2 && std::string_view(argv[1]) == "wait") return kube::wait_main(argc - 1, argv + 1);
  std::string command, file;
  server::UpgradeOptions upgrade;
  po::options_description options("options");
  options.add_options()("help,h", "show this help")("config,c", po::value(&file), "config file (YAML)")(
      "upgrade-socket", po::value(&upgrade.socket),
      "run: listen on this Unix socket (0600) for the next binary's --upgrade-from")(
      "upgrade-from", po::value(&upgrade.from),
      "run: take the listening sockets of the proxy listening on this Unix socket; it drains and exits. "
      "Afterwards this process listens there (or on --upgrade-socket) for the next upgrade");
  po::options_description hidden;
  hidden.add_options()("command", po::value(&command));
  po::options_description all;
  all.add(options).add(hidden);
  po::positional_options_description positional;
  positional.add("command", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "outrigger: " << e.what() << "\n" << kUsage;
    return 2;
  }
  if (vm.count("help") || command.empty()) {
    std::cout << kUsage << options;
    return command.empty() && !vm.count("help") ? 2 : 0;
  }
  if (command == "version") {
    std::cout << "outrigger " << kVersion << "\n";
    return 0;
  }
  if (command != "run" && command != "validate") {
    std::cerr << "outrigger: unknown command '" << command << "'\n" << kUsage;
    return 2;
  }
  if (file.empty()) {
    std::cerr << "outrigger: " << command << " needs -c FILE\n" << kUsage;
    return 2;
  }
  auto config = load_and_check(file);
  if (!config) return 2;
  if (command == "validate") {
    if (!upgrade.from.empty() || !upgrade.socket.empty()) {
      std::cerr << "outrigger: --upgrade-from and --upgrade-socket are for run\n";
      return 2;
    }
    std::cout << file << ": ok\n";
    return 0;
  }

  setup_logging(config->log_level);
  try {
    // The config is valid before anything is asked of a running process.
    server::Server server(std::move(*config));
    server.set_upgrade(upgrade);
    server.start();
    spdlog::info("outrigger {} ready", kVersion);
    const int code = server.run();
    spdlog::info("drained; exiting");
    spdlog::shutdown();
    return code;
  } catch (const std::exception& e) {
    spdlog::critical("cannot start: {}", e.what());
    return 1;
  }
}
