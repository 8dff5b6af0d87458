// Black-box harness for keyvend's HTTP tests: the REAL `keyvend serve` binary as a child
// process, httplib clients, a small JSON reader, signed payment notifies, raw TCP
// exchanges and `keyvend check`.
//
// A server lives in a hermetic temp dir: <root>/data, <root>/master.key, and every run's
// stdout and stderr appended to <root>/serve.stdout and <root>/serve.stderr (so a test can
// grep everything the server ever printed, across restarts). It listens on 127.0.0.1:0 and
// the test reads the port from the `keyvend listening on http://HOST:PORT` line (and, when
// started with --ops-listen, the ops port from `keyvend ops listening on http://HOST:PORT`).
//
// Raw sockets (RawConnection) cover what an HTTP library hides: a chosen source address
// (127.0.0.x), bytes sent one at a time, whole responses read and checked for completeness
// (status line, headers, Content-Length body) on a keep-alive connection, and EOF.
//
// Needs KEYVEND_BIN (the keyvend binary) as a compile definition.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/testing.h"
#include "gtest/gtest.h"
#include "http/signature.h"
#include "httplib.h"
#include "simdjson.h"

#ifndef KEYVEND_BIN
#error "KEYVEND_BIN must name the keyvend binary"
#endif

extern char** environ;

namespace kv::httptest {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Polls `cond` until it holds or `timeout` passes; returns its last value.
template <typename F>
bool PollUntil(F&& cond, milliseconds timeout, milliseconds step = milliseconds(5)) {
  const auto deadline = SteadyClock::now() + timeout;
  while (true) {
    if (cond()) return true;
    if (SteadyClock::now() >= deadline) return cond();
    std::this_thread::sleep_for(step);
  }
}

inline int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Waits (at most ~0.6 s) until the wall clock is in the first 400 ms of a second, so that a
// request sent right after sees the same unix second on the server as the test computed
// (for the ±tolerance boundary tests of the notify signature).
inline void AlignToFreshSecond() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const auto frac = std::chrono::duration_cast<milliseconds>(now) % 1000;
  if (frac > milliseconds(400)) std::this_thread::sleep_for(milliseconds(1005) - frac);
}

// Describes a wait status ("exit 0", "signal 9").
inline std::string DescribeWait(int status) {
  if (status == -1) return "no exit (still running at the deadline; killed)";
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

// True when a wait status says "exited with code 0".
inline bool ExitedZero(int status) {
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// The environment for a child: ours without any KEYVEND_* variable (hermetic: the runner's
// environment must not configure the server), plus `extra` (NAME=value).
inline std::vector<std::string> ChildEnv(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, "KEYVEND_", 8) == 0) continue;
    env.emplace_back(*e);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

// fork + execve with stdout on `out_fd` and stderr on `err_fd` (both closed in the parent
// by the caller). Everything is prepared before fork: between fork and exec the child only
// calls async-signal-safe functions. Returns the pid, or -1 (errno set).
inline pid_t Spawn(const std::vector<std::string>& args, const std::vector<std::string>& env,
                   int out_fd, int err_fd) {
  std::vector<std::string> args_copy = args, env_copy = env;
  std::vector<char*> argv, envp;
  for (std::string& a : args_copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& e : env_copy) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    // dup2 clears FD_CLOEXEC on the new descriptor; every other fd of ours is CLOEXEC.
    if (::dup2(out_fd, STDOUT_FILENO) < 0 || ::dup2(err_fd, STDERR_FILENO) < 0) _exit(126);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  return pid;
}

// Waits for `pid` up to `timeout`; true with *status when it exited.
inline bool WaitPid(pid_t pid, milliseconds timeout, int* status) {
  const auto deadline = SteadyClock::now() + timeout;
  while (true) {
    const pid_t w = ::waitpid(pid, status, WNOHANG);
    if (w == pid) return true;
    if (w < 0 && errno != EINTR) return false;
    if (SteadyClock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
}

struct CommandResult {
  int exit_code = -1;  // -1: did not exit normally (or could not start / timed out)
  std::string output;  // stdout and stderr
};

// Runs `args` (argv[0] a path) to completion (at most `timeout`), capturing its output in a
// file under `scratch_dir`; `extra_env` (NAME=value) is added to the child's environment.
inline CommandResult RunCommand(const std::vector<std::string>& args,
                                const std::string& scratch_dir,
                                milliseconds timeout = milliseconds(60000),
                                const std::vector<std::string>& extra_env = {}) {
  CommandResult r;
  static std::atomic<int> counter{0};
  const std::string out_path =
      scratch_dir + "/cmd-" + std::to_string(counter.fetch_add(1)) + ".out";
  const int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    r.output = "open " + out_path + ": " + std::strerror(errno);
    return r;
  }
  const pid_t pid = Spawn(args, ChildEnv(extra_env), fd, fd);
  ::close(fd);
  if (pid < 0) {
    r.output = std::string("fork: ") + std::strerror(errno);
    return r;
  }
  int status = 0;
  if (!WaitPid(pid, timeout, &status)) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    r.output = ReadWholeFile(out_path) + "\n[timed out]";
    return r;
  }
  r.output = ReadWholeFile(out_path);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}

// `keyvend check` on a stopped shop.
inline CommandResult RunKeyvendCheck(const std::string& data_dir, const std::string& key_file,
                                     const std::string& scratch_dir) {
  return RunCommand({KEYVEND_BIN, "check", "--data-dir", data_dir, "--master-key-file", key_file},
                    scratch_dir);
}

// --- the server process ---------------------------------------------------------------------

// One `keyvend serve` child at a time over a fixed temp dir; Start again after Stop/Kill
// restarts it on the same data dir.
class ServerProcess {
 public:
  // env: NAME=value pairs for the child (e.g. KEYVEND_ADMIN_TOKEN=...).
  explicit ServerProcess(std::vector<std::string> env) : env_(std::move(env)) {}
  ~ServerProcess() {
    if (pid_ > 0) Kill9();
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
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // Words run before the keyvend binary, e.g. {"/usr/bin/setpriv", "--reuid=65534", ...,
  // "--"}: a launcher that changes something about the process and then execs the rest
  // (so pid() is still keyvend's). Empty (the default): keyvend is executed directly.
  void set_launcher(std::vector<std::string> launcher) { launcher_ = std::move(launcher); }

  // Starts `keyvend serve` with the fixed arguments plus `extra_args` and waits (up to
  // `timeout`) for its listening line. On failure *error says why (with the child's
  // stderr) and the child is gone.
  bool Start(const std::vector<std::string>& extra_args, std::string* error,
             milliseconds timeout = milliseconds(30000)) {
    if (pid_ > 0) {
      *error = "already running";
      return false;
    }
    JoinReader();
    std::vector<std::string> args = {KEYVEND_BIN,         "serve",
                                     "--listen",          "127.0.0.1:0",
                                     "--data-dir",        data_dir(),
                                     "--master-key-file", key_file(),
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
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      *error = std::string("pipe2: ") + std::strerror(errno);
      return false;
    }
    const int err_fd = ::open(stderr_path().c_str(),
                              O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (err_fd < 0) {
      *error = "open " + stderr_path() + ": " + std::strerror(errno);
      ::close(fds[0]);
      ::close(fds[1]);
      return false;
    }
    const pid_t pid = Spawn(args, ChildEnv(env_), fds[1], err_fd);
    const int spawn_errno = errno;
    ::close(fds[1]);
    ::close(err_fd);
    if (pid < 0) {
      ::close(fds[0]);
      *error = std::string("fork: ") + std::strerror(spawn_errno);
      return false;
    }
    pid_ = pid;
    {
      std::lock_guard<std::mutex> l(mu_);
      out_.clear();
      eof_ = false;
    }
    reader_ = std::thread([this, fd = fds[0]] { ReadLoop(fd); });

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
  void Signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }

  // True (with *status) when the child has exited; never blocks. The child is then gone.
  bool Exited(int* status) {
    if (pid_ <= 0) return false;
    if (::waitpid(pid_, status, WNOHANG) != pid_) return false;
    pid_ = -1;
    JoinReader();
    return true;
  }

  // Waits up to `timeout` for the child to exit (after a signal sent with Signal). Returns
  // the wait status, or -1 if it is still running (it is then killed with SIGKILL).
  int WaitExit(milliseconds timeout) {
    if (pid_ <= 0) return -1;
    int status = 0;
    if (!WaitPid(pid_, timeout, &status)) {
      Kill9();
      return -1;
    }
    pid_ = -1;
    JoinReader();
    return status;
  }

  // SIGTERM, then wait up to `timeout` for the exit. Returns the wait status, or -1 if the
  // child did not exit in time (it is then killed with SIGKILL).
  int Terminate(milliseconds timeout = milliseconds(30000)) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    return WaitExit(timeout);
  }

  // SIGKILL and reap. Returns the wait status.
  int Kill9() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    JoinReader();
    return status;
  }

  // The current run's stdout so far.
  std::string Stdout() const {
    std::lock_guard<std::mutex> l(mu_);
    return out_;
  }
  // Everything every run printed (stdout and stderr files).
  std::string AllOutput() const {
    return ReadWholeFile(stdout_path()) + ReadWholeFile(stderr_path());
  }

 private:
  void ReadLoop(int fd) {
    const int log = ::open(stdout_path().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                           0600);
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
  bool AwaitListening(const std::string& prefix, milliseconds timeout, std::string* url,
                      int* port, std::string* error) {
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
               " ms; stdout:\n" + Stdout() + "\nstderr:\n" + ReadWholeFile(stderr_path());
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
  pid_t pid_ = -1;
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
                                    << ReadWholeFile(server.stderr_path());
  }
  const CommandResult check = RunKeyvendCheck(server.data_dir(), server.key_file(), server.root());
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find("keyvend check: OK"), std::string::npos) << check.output;
  const std::string printed = server.AllOutput() + check.output;
  for (const std::string& k : secrets) {
    if (printed.find(k) != std::string::npos) {
      ADD_FAILURE() << "a card key appears in the server's output";
      break;
    }
  }
}

// --- JSON (responses) ----------------------------------------------------------------------

// An owned JSON value (parsed with simdjson's DOM, error-code API). Lookups of absent
// members or out-of-range indexes give a "missing" value, so chains never crash.
class Json {
 public:
  enum class Type { kMissing, kNull, kBool, kInt, kDouble, kString, kArray, kObject };

  // kMissing (and *error set) when `text` is not one JSON value.
  static Json Parse(std::string_view text, std::string* error = nullptr) {
    simdjson::dom::parser parser;
    simdjson::padded_string padded(text);
    simdjson::dom::element root;
    const auto err = parser.parse(padded).get(root);
    if (err != simdjson::SUCCESS) {
      if (error != nullptr) *error = simdjson::error_message(err);
      return Json();
    }
    return From(root);
  }

  Type type() const { return type_; }
  bool missing() const { return type_ == Type::kMissing; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_int() const { return type_ == Type::kInt; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  // Accessors that return references exist for lvalues only; on a temporary (e.g.
  // `for (const Json& x : reply.json()["list"].items())`) they return copies, so a
  // range-for never iterates a destroyed value.
  const std::string& str() const& { return s_; }
  std::string str() const&& { return s_; }
  int64_t num() const { return i_; }
  bool boolean() const { return b_; }
  size_t size() const { return is_array() ? items_.size() : fields_.size(); }
  const std::vector<Json>& items() const& { return items_; }
  std::vector<Json> items() const&& { return items_; }
  const std::vector<std::pair<std::string, Json>>& fields() const& { return fields_; }
  std::vector<std::pair<std::string, Json>> fields() const&& { return fields_; }
  bool has(std::string_view key) const { return !(*this)[key].missing(); }

  const Json& operator[](std::string_view key) const& {
    for (const auto& [k, v] : fields_) {
      if (k == key) return v;
    }
    return Missing();
  }
  Json operator[](std::string_view key) const&& { return static_cast<const Json&>(*this)[key]; }
  const Json& operator[](size_t i) const& { return i < items_.size() ? items_[i] : Missing(); }
  Json operator[](size_t i) const&& { return static_cast<const Json&>(*this)[i]; }

  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const auto& f : fields_) out.push_back(f.first);
    return out;
  }

 private:
  static const Json& Missing() {
    static const Json* m = new Json();
    return *m;
  }

  // Every value is copied out with get() into a local first: iterating
  // e.get_array().value_unsafe() would bind to a temporary that dies at once.
  static Json From(simdjson::dom::element e) {
    Json j;
    switch (e.type()) {
      case simdjson::dom::element_type::NULL_VALUE: j.type_ = Type::kNull; break;
      case simdjson::dom::element_type::BOOL:
        j.type_ = e.get(j.b_) == simdjson::SUCCESS ? Type::kBool : Type::kMissing;
        break;
      case simdjson::dom::element_type::INT64:
        j.type_ = e.get(j.i_) == simdjson::SUCCESS ? Type::kInt : Type::kMissing;
        break;
      case simdjson::dom::element_type::UINT64:  // beyond int64: never expected from keyvend
      case simdjson::dom::element_type::DOUBLE: j.type_ = Type::kDouble; break;
      case simdjson::dom::element_type::STRING: {
        std::string_view sv;
        if (e.get(sv) != simdjson::SUCCESS) break;
        j.type_ = Type::kString;
        j.s_ = std::string(sv);
        break;
      }
      case simdjson::dom::element_type::ARRAY: {
        simdjson::dom::array arr;
        if (e.get(arr) != simdjson::SUCCESS) break;
        j.type_ = Type::kArray;
        for (simdjson::dom::element c : arr) j.items_.push_back(From(c));
        break;
      }
      case simdjson::dom::element_type::OBJECT: {
        simdjson::dom::object obj;
        if (e.get(obj) != simdjson::SUCCESS) break;
        j.type_ = Type::kObject;
        for (simdjson::dom::key_value_pair kv : obj) {
          j.fields_.emplace_back(std::string(kv.key), From(kv.value));
        }
        break;
      }
    }
    return j;
  }

  Type type_ = Type::kMissing;
  bool b_ = false;
  int64_t i_ = 0;
  std::string s_;
  std::vector<Json> items_;
  std::vector<std::pair<std::string, Json>> fields_;
};

// A JSON string literal (with quotes) for building request bodies.
inline std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

// --- HTTP -------------------------------------------------------------------------------------

// One response, or a transport failure (status -1, `error` says which).
struct Reply {
  int status = -1;
  std::string body;
  httplib::Headers headers;
  std::string error;

  Json json() const { return Json::Parse(body); }
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

inline std::ostream& operator<<(std::ostream& os, const Reply& r) {
  if (r.status < 0) return os << "[transport error: " << r.error << "]";
  return os << "[HTTP " << r.status << " " << r.body.substr(0, 600)
            << (r.body.size() > 600 ? "..." : "") << "]";
}

inline Reply ToReply(const httplib::Result& res) {
  Reply r;
  if (!res) {
    r.error = httplib::to_string(res.error());
    return r;
  }
  r.status = res->status;
  r.body = res->body;
  r.headers = res->headers;
  return r;
}

// A keep-alive client for 127.0.0.1:port with explicit timeouts.
inline std::unique_ptr<httplib::Client> MakeClient(int port) {
  auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
  c->set_keep_alive(true);
  c->set_tcp_nodelay(true);
  c->set_connection_timeout(5, 0);
  c->set_read_timeout(20, 0);
  c->set_write_timeout(20, 0);
  return c;
}

// A small API client over one keep-alive connection (not thread-safe: one per thread).
class Api {
 public:
  Api(int port, std::string admin_token)
      : client_(MakeClient(port)), admin_(std::move(admin_token)) {}

  httplib::Client& raw() { return *client_; }

  Reply Get(const std::string& path, const httplib::Headers& h = {}) {
    return ToReply(client_->Get(path, h));
  }
  Reply Post(const std::string& path, const std::string& body,
             const std::string& type = "application/json", const httplib::Headers& h = {}) {
    return ToReply(client_->Post(path, h, body, type));
  }
  Reply Patch(const std::string& path, const std::string& body,
              const std::string& type = "application/json", const httplib::Headers& h = {}) {
    return ToReply(client_->Patch(path, h, body, type));
  }
  httplib::Headers AdminHeaders() const { return {{"Authorization", "Bearer " + admin_}}; }
  Reply AdminGet(const std::string& path) { return Get(path, AdminHeaders()); }
  Reply AdminPost(const std::string& path, const std::string& body,
                  const std::string& type = "application/json") {
    return Post(path, body, type, AdminHeaders());
  }
  Reply AdminPatch(const std::string& path, const std::string& body) {
    return Patch(path, body, "application/json", AdminHeaders());
  }

 private:
  std::unique_ptr<httplib::Client> client_;
  std::string admin_;
};

// Runs fn(thread_index, api) on `threads` threads, each with its own keep-alive Api,
// all released together once every client exists.
template <typename F>
void OnThreads(int threads, int port, const std::string& admin_token, F&& fn) {
  std::latch ready(threads);
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      Api api(port, admin_token);
      ready.arrive_and_wait();
      fn(t, api);
    });
  }
  for (std::thread& th : pool) th.join();
}

// --- payments ---------------------------------------------------------------------------------

inline std::string NotifyBody(const std::string& order_id, const std::string& payment_id,
                              int64_t amount_cents, const std::string& currency,
                              const std::string& status = "succeeded") {
  return "{\"order_id\":" + Quote(order_id) + ",\"payment_id\":" + Quote(payment_id) +
         ",\"amount_cents\":" + std::to_string(amount_cents) + ",\"currency\":" +
         Quote(currency) + ",\"status\":" + Quote(status) + "}";
}

// POSTs a notify signed with `secret` at unix time t (now when t == 0).
inline Reply SendNotify(Api& api, const std::string& secret, const std::string& body,
                        int64_t t = 0) {
  if (t == 0) t = NowUnix();
  return api.Post("/api/v1/payments/notify", body, "application/json",
                  {{"Keyvend-Signature", kv::http::SignNotify(secret, t, body)}});
}

// --- assertions -------------------------------------------------------------------------------

// The SPEC §4 error shape, exactly: {"error":{"code":"<code>","message":"<non-empty>"}}
// with the status and an application/json content type.
inline ::testing::AssertionResult IsError(const Reply& r, int status, const std::string& code) {
  if (r.status != status) {
    return ::testing::AssertionFailure() << "want HTTP " << status << " " << code << ", got " << r;
  }
  if (r.header("Content-Type").rfind("application/json", 0) != 0) {
    return ::testing::AssertionFailure()
           << "error without a JSON content type (" << r.header("Content-Type") << "): " << r;
  }
  std::string err;
  const Json j = Json::Parse(r.body, &err);
  if (!j.is_object() || j.size() != 1 || !j["error"].is_object()) {
    return ::testing::AssertionFailure() << "not {\"error\":{...}} (" << err << "): " << r;
  }
  const Json& e = j["error"];
  if (e.size() != 2 || !e["code"].is_string() || !e["message"].is_string()) {
    return ::testing::AssertionFailure() << "error is not {code, message} strings: " << r;
  }
  if (e["code"].str() != code) {
    return ::testing::AssertionFailure() << "want code " << code << ", got " << r;
  }
  if (e["message"].str().empty()) {
    return ::testing::AssertionFailure() << "empty error message: " << r;
  }
  if ((status == 429 || status == 503) && r.header("Retry-After").empty()) {
    return ::testing::AssertionFailure() << status << " without Retry-After: " << r;
  }
  return ::testing::AssertionSuccess();
}

// --- raw TCP ----------------------------------------------------------------------------------

struct RawResponse {
  bool connected = false;
  std::string data;        // everything read
  bool complete = false;   // a status line, headers and Content-Length bytes of body arrived
  bool peer_closed = false;
  int status = -1;
  std::string body;        // the first response's body (when complete)
};

// One HTTP/1.1 response read from a raw socket.
struct HttpMessage {
  bool complete = false;   // a status line, headers and the whole body arrived
  bool eof = false;        // the peer closed (or reset) the connection before it was complete
  bool timed_out = false;  // the read's deadline passed before it was complete
  std::string raw;         // the response's bytes as received (everything read if incomplete)
  int status = -1;
  httplib::Headers headers;  // case-insensitive names
  std::string body;          // de-chunked

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  // As a Reply (for IsError and printing); a transport error unless complete.
  Reply AsReply() const {
    Reply r;
    if (!complete) {
      r.error = std::string(eof ? "connection closed" : timed_out ? "timed out" : "incomplete") +
                " after " + std::to_string(raw.size()) + " bytes: " + raw.substr(0, 300);
      return r;
    }
    r.status = status;
    r.body = body;
    r.headers = headers;
    return r;
  }
};

inline std::ostream& operator<<(std::ostream& os, const HttpMessage& m) {
  return os << m.AsReply();
}

// Parses the response at the start of `buf` (`at_eof`: no more bytes will come, so a body
// delimited by the connection's end is complete). Returns the bytes it takes, or 0 while it
// is incomplete; a malformed response is never complete.
inline size_t ParseHttpResponse(const std::string& buf, bool at_eof, HttpMessage* out) {
  const size_t head_end = buf.find("\r\n\r\n");
  if (head_end == std::string::npos) return 0;
  if (buf.rfind("HTTP/1.", 0) != 0 || head_end < 12 || buf[8] != ' ') return 0;
  HttpMessage m;
  m.status = std::atoi(buf.c_str() + 9);
  size_t line = buf.find("\r\n") + 2;
  while (line < head_end + 2) {
    const size_t eol = buf.find("\r\n", line);
    const size_t colon = buf.find(':', line);
    if (colon == std::string::npos || colon > eol) return 0;
    size_t v = colon + 1;
    while (v < eol && (buf[v] == ' ' || buf[v] == '\t')) ++v;
    m.headers.emplace(buf.substr(line, colon - line), buf.substr(v, eol - v));
    line = eol + 2;
  }
  size_t end = head_end + 4;
  const std::string length = m.header("Content-Length");
  if (!length.empty()) {
    const size_t n = std::strtoull(length.c_str(), nullptr, 10);
    if (buf.size() < end + n) return 0;
    m.body = buf.substr(end, n);
    end += n;
  } else if (!m.header("Transfer-Encoding").empty()) {  // chunked
    while (true) {
      const size_t eol = buf.find("\r\n", end);
      if (eol == std::string::npos) return 0;
      const size_t n = std::strtoull(buf.c_str() + end, nullptr, 16);
      if (n == 0) {  // last chunk, then trailers up to an empty line
        const size_t trailers_end = buf.find("\r\n\r\n", eol);
        if (buf.compare(eol, 4, "\r\n\r\n") == 0) {
          end = eol + 4;
        } else if (trailers_end != std::string::npos) {
          end = trailers_end + 4;
        } else {
          return 0;
        }
        break;
      }
      if (buf.size() < eol + 2 + n + 2) return 0;
      m.body.append(buf, eol + 2, n);
      end = eol + 2 + n + 2;
    }
  } else if (m.status >= 200 && m.status != 204 && m.status != 304) {
    if (!at_eof) return 0;  // delimited by the connection's end
    m.body = buf.substr(end);
    end = buf.size();
  }
  m.complete = true;
  m.raw = buf.substr(0, end);
  *out = std::move(m);
  return end;
}

// A request as bytes: the request line, `Host: 127.0.0.1`, `headers`, and a Content-Length
// for a body (always for POST, PUT and PATCH).
inline std::string RawRequest(const std::string& method, const std::string& target,
                              const std::vector<std::pair<std::string, std::string>>& headers = {},
                              const std::string& body = "") {
  std::string out = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const auto& [name, value] : headers) out += name + ": " + value + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return out + "\r\n" + body;
}

// One client TCP connection to 127.0.0.1:port that sends exactly the bytes it is given,
// optionally from a chosen source address (any 127.0.0.x is local on Linux).
class RawConnection {
 public:
  explicit RawConnection(int port, const std::string& source_ip = "") {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    if (!source_ip.empty()) {
      sockaddr_in src{};
      src.sin_family = AF_INET;
      if (::inet_pton(AF_INET, source_ip.c_str(), &src.sin_addr) != 1 ||
          ::bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
        ::close(fd_);
        fd_ = -1;
        return;
      }
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
    int yes = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
  }
  ~RawConnection() { Close(); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // The server has sent something (or closed): a read would not block.
  bool Readable() const {
    if (!pending_.empty()) return true;
    pollfd p{fd_, POLLIN, 0};
    return fd_ >= 0 && ::poll(&p, 1, 0) > 0;
  }

  // Sends `bytes` one at a time, `interval` apart, and stops early as soon as the server
  // answers or closes (or a send fails). Returns the number of bytes sent.
  size_t SendSlowly(const std::string& bytes, milliseconds interval) {
    size_t sent = 0;
    for (; sent < bytes.size(); ++sent) {
      if (Readable() || !Send(bytes.substr(sent, 1))) break;
      if (sent + 1 < bytes.size()) {
        pollfd p{fd_, POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(interval.count()));  // wakes early on an answer
      }
    }
    return sent;
  }

  // Reads one whole response (bytes after it stay buffered for the next call), until it is
  // complete, the peer closes or `timeout` passes.
  HttpMessage ReadResponse(milliseconds timeout) {
    HttpMessage m;
    const auto deadline = SteadyClock::now() + timeout;
    while (true) {
      const size_t used = ParseHttpResponse(pending_, /*at_eof=*/false, &m);
      if (used > 0) {
        pending_.erase(0, used);
        return m;
      }
      const int r = RecvSome(deadline);
      if (r > 0) continue;
      if (r == 0) {  // EOF or reset: a response delimited by the close is complete now
        const size_t at_eof = ParseHttpResponse(pending_, /*at_eof=*/true, &m);
        if (at_eof > 0) {
          pending_.erase(0, at_eof);
          return m;
        }
        m.eof = true;
      } else {
        m.timed_out = true;
      }
      m.raw = pending_;
      pending_.clear();
      return m;
    }
  }

  // Reads until the peer closes (EOF or reset) or `timeout` passes; true when it closed.
  // Bytes that arrive meanwhile are appended to *rest.
  bool ReadToEof(milliseconds timeout, std::string* rest = nullptr) {
    const auto deadline = SteadyClock::now() + timeout;
    while (true) {
      const int r = RecvSome(deadline);
      if (rest != nullptr) rest->append(pending_);
      pending_.clear();
      if (r == 0) return true;
      if (r < 0) return false;
    }
  }

  // Bytes this connection sent that the server process has not read yet (the receive queue
  // of the server's end of the connection, from /proc/net/tcp); -1 when it is not found.
  // 0 means the server's code has consumed everything (e.g. it is parsing a request).
  int64_t UnreadByServer() const {
    sockaddr_in local{}, peer{};
    socklen_t len = sizeof local;
    if (fd_ < 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len) != 0) return -1;
    len = sizeof peer;
    if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return -1;
    // The kernel prints an address as the hex of its in-memory (network-order) u32, and
    // the port in host order.
    char want_local[32], want_remote[32];
    std::snprintf(want_local, sizeof want_local, "%08X:%04X", peer.sin_addr.s_addr,
                  ntohs(peer.sin_port));
    std::snprintf(want_remote, sizeof want_remote, "%08X:%04X", local.sin_addr.s_addr,
                  ntohs(local.sin_port));
    std::istringstream in(ReadWholeFile("/proc/net/tcp"));
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string sl, l, r, st, queues;
      if (!(fields >> sl >> l >> r >> st >> queues)) continue;
      if (l != want_local || r != want_remote) continue;
      const size_t colon = queues.find(':');
      if (colon == std::string::npos) return -1;
      return static_cast<int64_t>(std::strtoull(queues.c_str() + colon + 1, nullptr, 16));
    }
    return -1;
  }

  // False when not everything could be sent (e.g. the peer closed).
  bool Send(const std::string& bytes) {
    size_t off = 0;
    while (fd_ >= 0 && off < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return fd_ >= 0;
  }

  // Reads into out->data until a complete response is buffered (unless read_to_eof), the
  // peer closes, or `timeout` passes; then parses the first response's status and body.
  void Read(milliseconds timeout, bool read_to_eof, RawResponse* out) {
    out->connected = fd_ >= 0;
    const auto deadline = SteadyClock::now() + timeout;
    char buf[8192];
    while (fd_ >= 0 && SteadyClock::now() < deadline && !(out->complete && !read_to_eof)) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(1, left.count())));
      if (r <= 0) continue;
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        out->peer_closed = true;
        break;
      }
      out->data.append(buf, static_cast<size_t>(n));
      Parse(out);
    }
  }

 private:
  static void Parse(RawResponse* out) {
    if (out->complete) return;
    const size_t hdr_end = out->data.find("\r\n\r\n");
    if (hdr_end == std::string::npos) return;
    std::string lower = out->data.substr(0, hdr_end);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const size_t cl = lower.find("\r\ncontent-length:");
    if (cl == std::string::npos) return;
    const size_t len = std::strtoull(lower.c_str() + cl + 17, nullptr, 10);
    if (out->data.size() < hdr_end + 4 + len) return;
    out->complete = true;
    out->body = out->data.substr(hdr_end + 4, len);
    if (out->data.rfind("HTTP/1.", 0) == 0 && out->data.size() > 12) {
      out->status = std::atoi(out->data.c_str() + 9);
    }
  }

  // Appends what one recv returns to pending_, waiting until `deadline`: >0 bytes read,
  // 0 the peer closed (EOF or reset), -1 the deadline passed.
  int RecvSome(SteadyClock::time_point deadline) {
    char buf[16384];
    while (fd_ >= 0) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
      if (left.count() <= 0) return -1;
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
      if (r <= 0) continue;
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return 0;
      pending_.append(buf, static_cast<size_t>(n));
      return 1;
    }
    return 0;
  }

  int fd_ = -1;
  std::string pending_;  // received, not yet returned by ReadResponse
};

// Sends `request` as is on a new connection (it may announce a body it never sends) and
// reads the response until it is complete — or, with read_to_eof, until the peer closes —
// or `timeout` passes.
inline RawResponse RawExchange(int port, const std::string& request, milliseconds timeout,
                               bool read_to_eof = false) {
  RawResponse out;
  RawConnection c(port);
  if (!c.connected()) return out;
  c.Send(request);
  c.Read(timeout, read_to_eof, &out);
  return out;
}

// --- metrics ---------------------------------------------------------------------------------

// The value of the sample `name{labels}` in a Prometheus text exposition (the label set must
// be exactly `labels`, in any order); nullopt when there is no such sample.
// Milliseconds since t0.
inline double MsSince(SteadyClock::time_point t0) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count();
}

// Sends `request` on `c` and reads one whole response. A failed send still reads: a
// connection refused at accept may have answered (and closed) before the request went out.
inline HttpMessage Exchange(RawConnection& c, const std::string& request,
                            milliseconds timeout = milliseconds(20000)) {
  (void)c.Send(request);
  return c.ReadResponse(timeout);
}

// An error answer with `status` and `code` that ends the connection: it says
// Connection: close, then the server closes (within `timeout`).
inline ::testing::AssertionResult IsErrorThenClose(const HttpMessage& m, RawConnection& c,
                                                   int status, const std::string& code,
                                                   milliseconds timeout = milliseconds(20000)) {
  ::testing::AssertionResult shape = IsError(m.AsReply(), status, code);
  if (!shape) return shape;
  if (m.header("Connection") != "close") {
    return ::testing::AssertionFailure() << "no Connection: close on the " << status << ":\n"
                                         << m.raw;
  }
  if (!c.ReadToEof(timeout)) {
    return ::testing::AssertionFailure() << "the connection stayed open after the " << status;
  }
  return ::testing::AssertionSuccess();
}

inline std::optional<double> MetricValue(
    const std::string& exposition, const std::string& name,
    const std::vector<std::pair<std::string, std::string>>& labels = {}) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line.rfind(name, 0) != 0) continue;
    size_t p = name.size();
    std::vector<std::pair<std::string, std::string>> got;
    if (p < line.size() && line[p] == '{') {
      ++p;
      while (p < line.size() && line[p] != '}') {
        const size_t eq = line.find("=\"", p);
        if (eq == std::string::npos) break;
        std::string value;
        size_t q = eq + 2;
        for (; q < line.size() && line[q] != '"'; ++q) {
          if (line[q] == '\\' && q + 1 < line.size()) ++q;
          value.push_back(line[q]);
        }
        got.emplace_back(line.substr(p, eq - p), value);
        p = q + 1;
        if (p < line.size() && line[p] == ',') ++p;
      }
      ++p;
    }
    if (p >= line.size() || line[p] != ' ') continue;  // another name with this prefix
    std::vector<std::pair<std::string, std::string>> want = labels;
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    if (got != want) continue;
    return std::strtod(line.c_str() + p + 1, nullptr);
  }
  return std::nullopt;
}

}  // namespace kv::httptest
