// ServerProcess: the REAL `keyvend serve` as a child process (kit/process.h) for the HTTP
// black-box tests, and their common end (ExpectCleanStop: SIGTERM, `keyvend check`, no card
// key printed).
//
// A server lives in a hermetic temp dir: <root>/data, <root>/master.key, and every run's
// stdout and stderr appended to <root>/serve.stdout and <root>/serve.stderr (so a test can
// grep everything the server ever printed, across restarts). It listens on 127.0.0.1:0 and
// the test reads the port from the `keyvend listening on http://HOST:PORT` line (and, when
// started with --ops-listen, the ops port from `keyvend ops listening on http://HOST:PORT`).
// Its environment is the kit's (nothing of the runner's KEYVEND_*) plus what the test names.
//
// Header-only: needs KEYVEND_BIN (the keyvend binary) as a compile definition.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kit/files.h"
#include "kit/process.h"

#ifndef KEYVEND_BIN
#error "KEYVEND_BIN must name the keyvend binary"
#endif

namespace kv::httptest {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

using kv::testing::Child;
using kv::testing::ChildOptions;
using kv::testing::DescribeWait;
using kv::testing::ExitedZero;
using kv::testing::Output;
using kv::testing::ReadFile;
using kv::testing::RunCommand;
using kv::testing::RunResult;

// `keyvend check` on a stopped shop.
inline RunResult RunKeyvendCheck(const std::string& data_dir, const std::string& key_file) {
  return RunCommand({KEYVEND_BIN, "check", "--data-dir", data_dir, "--master-key-file", key_file});
}

// --- the server process ---------------------------------------------------------------------

// One `keyvend serve` child at a time over a fixed temp dir; Start again after Stop/Kill
// restarts it on the same data dir.
class ServerProcess {
 public:
  // env: NAME=value pairs for the child (e.g. KEYVEND_ADMIN_TOKEN=...).
  explicit ServerProcess(std::vector<std::string> env) : env_(std::move(env)) {}
  ~ServerProcess() {
    Kill9();
    JoinReader();
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  const std::string& root() const { return tmp_.path(); }
  std::string data_dir() const { return tmp_.Sub("data"); }
  std::string key_file() const { return tmp_.Sub("master.key"); }
  std::string stdout_path() const { return tmp_.Sub("serve.stdout"); }
  std::string stderr_path() const { return tmp_.Sub("serve.stderr"); }
  int port() const { return port_; }
  const std::string& url() const { return url_; }
  // The ops listener's port (0 unless started with --ops-listen).
  int ops_port() const { return ops_port_; }
  const std::string& ops_url() const { return ops_url_; }
  bool running() const { return child_.running(); }
  pid_t pid() const { return child_.pid(); }
  // Words run before the keyvend binary, e.g. {"/usr/bin/setpriv", "--reuid=65534", ...,
  // "--"}: a launcher that changes something about the process and then execs the rest
  // (so pid() is still keyvend's). Empty (the default): keyvend is executed directly.
  void set_launcher(std::vector<std::string> launcher) { launcher_ = std::move(launcher); }
  // The server binary to run instead of KEYVEND_BIN: one that takes `keyvend serve`'s
  // command line after its first word (e.g. the test build's keyvend_fault_server, which
  // runs the same serve path on a fault-injecting file system). Empty: KEYVEND_BIN.
  void set_binary(std::string binary) { binary_ = std::move(binary); }
  // The NAME=value pairs of the next Start's environment (replacing the constructor's).
  void set_env(std::vector<std::string> env) { env_ = std::move(env); }

  // Starts `keyvend serve` with the fixed arguments plus `extra_args` and waits (up to
  // `timeout`) for its listening line. On failure *error says why (with the child's
  // stderr) and the child is gone.
  bool Start(const std::vector<std::string>& extra_args, std::string* error,
             milliseconds timeout = milliseconds(30000)) {
    if (child_.running()) {
      *error = "already running";
      return false;
    }
    JoinReader();
    std::vector<std::string> args = {binary_.empty() ? std::string(KEYVEND_BIN) : binary_,
                                     "serve",
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--data-dir",
                                     data_dir(),
                                     "--master-key-file",
                                     key_file(),
                                     "--payment-sandbox"};
    // These tests are about the API, not load protection: they send far more than a small
    // shop's default rates from one address, so they turn the limits off explicitly
    // (a test about limits passes its own, which win: the last flag counts).
    for (const char* cls : {"order", "read", "notify", "admin", "page"}) {
      args.push_back(std::string("--rate-limit-") + cls + "-per-second=0");
      args.push_back(std::string("--rate-limit-") + cls + "-per-client-per-second=0");
    }
    args.push_back("--pending-orders-per-contact-max=0");
    args.push_back("--pending-orders-per-client-max=0");
    // Likewise the caps of admission control: many connections from 127.0.0.1, many
    // requests in flight.
    args.push_back("--max-connections-per-client=0");
    args.push_back("--waiting-connections-per-client=0");
    for (const char* cls : {"order", "read", "admin", "page"}) {
      args.push_back(std::string("--inflight-") + cls + "-max=0");
    }
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    args.insert(args.begin(), launcher_.begin(), launcher_.end());
    ChildOptions options;
    options.env = env_;
    options.out = Output::Pipe();
    options.err = Output::AppendTo(stderr_path());
    if (!child_.Start(args, options, error)) return false;
    {
      std::lock_guard<std::mutex> l(mu_);
      out_.clear();
      eof_ = false;
    }
    reader_ = std::thread([this, fd = child_.TakeStdout()] { ReadLoop(fd); });

    // The listening line(s), or EOF (the child died), or the deadline.
    const bool with_ops = std::any_of(extra_args.begin(), extra_args.end(), [](const auto& a) {
      return a.rfind("--ops-listen", 0) == 0;
    });
    ops_port_ = 0;
    if (!AwaitListening("keyvend listening on ", timeout, &url_, &port_, error) ||
        (with_ops &&
         !AwaitListening("keyvend ops listening on ", timeout, &ops_url_, &ops_port_, error))) {
      Kill9();
      return false;
    }
    return true;
  }

  // Sends `sig` to the running child; returns at once.
  void Signal(int sig) { child_.Signal(sig); }

  // True (with *status) when the child has exited; never blocks. The child is then gone.
  bool Exited(int* status) {
    if (!child_.Exited(status)) return false;
    JoinReader();
    return true;
  }

  // Waits up to `timeout` for the child to exit (after a signal sent with Signal). Returns
  // the wait status, or -1 if it is still running (it is then killed with SIGKILL).
  int WaitExit(milliseconds timeout) {
    const int status = child_.Wait(timeout);
    JoinReader();
    return status;
  }

  // SIGTERM, then wait up to `timeout` for the exit. Returns the wait status, or -1 if the
  // child did not exit in time (it is then killed with SIGKILL).
  int Terminate(milliseconds timeout = milliseconds(30000)) {
    if (!child_.running()) return -1;
    child_.Signal(SIGTERM);
    return WaitExit(timeout);
  }

  // SIGKILL and reap. Returns the wait status (-1 when nothing ran).
  int Kill9() {
    const int status = child_.Kill9();
    JoinReader();
    return status;
  }

  // The current run's stdout so far.
  std::string Stdout() const {
    std::lock_guard<std::mutex> l(mu_);
    return out_;
  }
  // Everything every run printed (stdout and stderr files).
  std::string AllOutput() const { return ReadFile(stdout_path()) + ReadFile(stderr_path()); }

 private:
  void ReadLoop(int fd) {
    const int log = ::open(stdout_path().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    char buf[16384];
    while (true) {
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (log >= 0) {
        ssize_t off = 0;
        while (off < n) {
          const ssize_t w = ::write(log, buf + off, static_cast<size_t>(n - off));
          if (w <= 0) break;
          off += w;
        }
      }
      std::lock_guard<std::mutex> l(mu_);
      out_.append(buf, static_cast<size_t>(n));
      cv_.notify_all();
    }
    if (log >= 0) ::close(log);
    ::close(fd);
    std::lock_guard<std::mutex> l(mu_);
    eof_ = true;
    cv_.notify_all();
  }

  void JoinReader() {
    if (reader_.joinable()) reader_.join();
  }

  // Waits for the line `<prefix>http://HOST:PORT` on stdout and parses it; false (with
  // *error) on EOF, the deadline or a malformed line.
  bool AwaitListening(const std::string& prefix, milliseconds timeout, std::string* url, int* port,
                      std::string* error) {
    const std::string marker = prefix + "http://";
    std::string line;
    {
      std::unique_lock<std::mutex> l(mu_);
      const auto line_start = [&]() -> size_t {
        // At the start of a line only.
        for (size_t p = out_.find(marker); p != std::string::npos; p = out_.find(marker, p + 1)) {
          if ((p == 0 || out_[p - 1] == '\n') && out_.find('\n', p) != std::string::npos) {
            return p;
          }
        }
        return std::string::npos;
      };
      cv_.wait_until(l, SteadyClock::now() + timeout,
                     [&] { return line_start() != std::string::npos || eof_; });
      const size_t p = line_start();
      if (p != std::string::npos) line = out_.substr(p, out_.find('\n', p) - p);
    }
    if (line.empty()) {
      *error = "no '" + prefix + "' line within " + std::to_string(timeout.count()) +
               " ms; stdout:\n" + Stdout() + "\nstderr:\n" + ReadFile(stderr_path());
      return false;
    }
    *url = line.substr(prefix.size());
    const size_t colon = url->rfind(':');
    *port = colon == std::string::npos ? 0 : std::atoi(url->c_str() + colon + 1);
    if (url->rfind("http://127.0.0.1:", 0) != 0 || *port <= 0 || *port > 65535) {
      *error = "malformed listening line: " + line;
      return false;
    }
    return true;
  }

  kv::testing::TempDir tmp_;
  std::vector<std::string> env_;
  std::vector<std::string> launcher_;
  std::string binary_;
  Child child_;
  int port_ = 0;
  std::string url_;
  int ops_port_ = 0;
  std::string ops_url_;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string out_;
  bool eof_ = false;
};

// The end of every black-box test: SIGTERM (exit 0 expected) if the server still runs,
// `keyvend check` on the stopped data dir (exit 0, "OK"), and none of `secrets` (the card
// keys the test imported) in anything the server or the check ever printed (SPEC §2.6).
// Non-fatal failures.
inline void ExpectCleanStop(ServerProcess& server, const std::vector<std::string>& secrets) {
  if (server.running()) {
    const int status = server.Terminate();
    EXPECT_TRUE(ExitedZero(status)) << "SIGTERM: " << DescribeWait(status) << "; stderr:\n"
                                    << ReadFile(server.stderr_path());
  }
  const RunResult check = RunKeyvendCheck(server.data_dir(), server.key_file());
  EXPECT_EQ(check.exit_code, 0) << check.out;
  EXPECT_NE(check.out.find("keyvend check: OK"), std::string::npos) << check.out;
  const std::string printed = server.AllOutput() + check.out;
  for (const std::string& k : secrets) {
    if (printed.find(k) != std::string::npos) {
      ADD_FAILURE() << "a card key appears in the server's output";
      break;
    }
  }
}

}  // namespace kv::httptest
