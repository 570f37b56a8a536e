// Other programs in the tests: the outrigger binary, curl, nghttp, h2spec,
// Python gRPC peers. Each runs with a deadline and is killed when its owner
// goes, so a hang fails the test instead of blocking the suite.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace testing_support {

using namespace std::chrono_literals;

// A directory of the test's own, removed with it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string write(const std::string& name, const std::string& text) const;
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::string slurp(const std::string& path);

struct Run {
  int exit_code;  // -1: it was still running at the deadline (and was killed)
  std::string out, err;
};

// Runs argv[0] (a path, or a name looked up on PATH) to its end.
Run run_program(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 10s);

// A program left running while the test goes on (a server): its stdout and
// stderr go to files; it is killed when this goes.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const TempDir& dir, const std::string& name);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  pid_t pid() const { return pid_; }
  std::string out() const { return slurp(out_); }
  std::string err() const { return slurp(err_); }
  // Waits until its stdout holds `text`; false at the deadline or when it exited.
  bool wait_for_output(const std::string& text, std::chrono::milliseconds timeout = 10s) const;
  // Sends `signal` and waits for the exit; the exit code, or -1.
  int stop(int signal, std::chrono::milliseconds timeout = 10s);

 private:
  mutable pid_t pid_ = -1;
  mutable int exit_code_ = -1;
  std::string out_, err_;
};

pid_t spawn(const std::vector<std::string>& argv, const std::string& out, const std::string& err);
// Waits up to `timeout`; -1 if still running (then it is killed).
int wait_exit(pid_t pid, std::chrono::milliseconds timeout);

// The program is installed (on PATH, or at that path).
bool have_program(const std::string& name);

// Debian's Python, the one that sees python3-grpcio (not the python3 first on PATH).
inline const char* kPython = "/usr/bin/python3";

}  // namespace testing_support
