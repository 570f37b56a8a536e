#include "support/process.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace testing_support {

namespace fs = std::filesystem;

TempDir::TempDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "outside";
  for (auto& c : name)
    if (c == '/') c = '_';
  // Unique within the process too: a test may hold several at once (a
  // server's Child and a run_program beside it).
  static std::atomic<unsigned> serial{0};
  path_ = fs::temp_directory_path() /
          ("outrigger-" + std::to_string(::getpid()) + "-" + std::to_string(serial++) + "-" + name);
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& text) const {
  std::ofstream(path_ / name) << text;
  return (path_ / name).string();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

pid_t spawn(const std::vector<std::string>& args, const std::string& out, const std::string& err) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);  // its own group: a kill reaches what it started too
    if (!std::freopen(out.c_str(), "w", stdout) || !std::freopen(err.c_str(), "w", stderr)) ::_exit(126);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(5ms);
  }
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

Run run_program(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  TempDir dir;
  const auto out = dir.file("run.out"), err = dir.file("run.err");
  const int code = wait_exit(spawn(argv, out, err), timeout);
  return {code, slurp(out), slurp(err)};
}

Child::Child(const std::vector<std::string>& argv, const TempDir& dir, const std::string& name)
    : out_(dir.file(name + ".out")), err_(dir.file(name + ".err")) {
  pid_ = spawn(argv, out_, err_);
}

Child::~Child() {
  if (pid_ > 0) stop(SIGKILL, 5s);
}

bool Child::wait_for_output(const std::string& text, std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (out().find(text) != std::string::npos) return true;
    int status = 0;
    if (pid_ <= 0) return false;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      pid_ = -1;  // reaped
      return out().find(text) != std::string::npos;
    }
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

int Child::stop(int signal, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return exit_code_;
  ::kill(-pid_, signal);
  ::kill(pid_, signal);
  exit_code_ = wait_exit(pid_, timeout);
  pid_ = -1;
  return exit_code_;
}

bool have_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string d; std::getline(dirs, d, ':');)
    if (::access((d + "/" + name).c_str(), X_OK) == 0) return true;
  return false;
}

}  // namespace testing_support
