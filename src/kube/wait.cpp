#include "outrigger/kube/wait.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/program_options.hpp>
#include <iostream>
#include <thread>

#include "outrigger/core/duration.hpp"

namespace outrigger::kube {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

int probe_status(std::uint16_t port, const std::string& path, std::chrono::milliseconds timeout) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  http::request<http::empty_body> req{http::verb::get, path, 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::user_agent, "outrigger-wait");
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  int status = 0;
  stream.expires_after(timeout);
  const asio::ip::tcp::endpoint to(asio::ip::address_v4::loopback(), port);
  stream.async_connect(to, [&](beast::error_code ec) {
    if (ec) return;
    http::async_write(stream, req, [&](beast::error_code ec, std::size_t) {
      if (ec) return;
      http::async_read(stream, buffer, res, [&](beast::error_code ec, std::size_t) {
        if (!ec) status = static_cast<int>(res.result_int());
      });
    });
  });
  io.run();
  return status;
}

int wait_main(int argc, char** argv) {
  namespace po = boost::program_options;
  std::uint16_t port = 9901;
  std::string path = "/ready", timeout_text = "60s";
  po::options_description opts("outrigger wait [options]: wait until the proxy is ready");
  opts.add_options()("help,h", "show this help")
      ("admin-port", po::value(&port), "the admin listener's port on 127.0.0.1 (9901)")
      ("path", po::value(&path), "the path that answers 200 when ready (/ready)")
      ("timeout", po::value(&timeout_text), "give up after this long (60s)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "outrigger wait: " << e.what() << "\n" << opts;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << opts;
    return 0;
  }
  const auto timeout = core::parse_duration(timeout_text);
  if (!timeout) {
    std::cerr << "outrigger wait: --timeout: '" << timeout_text << "' is not a duration (60s, 500ms)\n";
    return 2;
  }
  const auto deadline = std::chrono::steady_clock::now() + *timeout;
  int last = 0;
  for (;;) {
    last = probe_status(port, path, std::chrono::milliseconds(1000));
    if (last == 200) {
      std::cout << "outrigger wait: ready\n";
      return 0;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the poll tick
  }
  std::cerr << "outrigger wait: http://127.0.0.1:" << port << path << " not ready after " << timeout_text
            << (last ? " (last status " + std::to_string(last) + ")" : std::string(" (no answer)")) << "\n";
  return 1;
}

}  // namespace outrigger::kube
