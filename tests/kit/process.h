// The one way a test runs a binary: an explicit environment, captured output, a deadline.
//
// Environment. A child gets BasicEnvironment() plus the NAME=value pairs the test names,
// nothing else of the test's environment: a developer's KEYVEND_DATA_DIR (or any other
// KEYVEND_*) never reaches a binary under test. BasicEnvironment() passes through only
//   PATH HOME LANG LC_ALL TZ TMPDIR   (what any program may expect), and
//   ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS TSAN_OPTIONS   (the sanitizer builds' settings),
// each when it is set. A pair the test names wins over a passed-through one.
//
// Two shapes:
//  - RunCommand(): start, wait at most `timeout`, capture stdout and stderr in memory. A child
//    still running at the deadline is killed with SIGKILL and the timeout is a test failure
//    (ADD_FAILURE naming the command).
//  - Child: a long-running process (a server, a crash child): Start, pid(), Signal,
//    Exited, Wait(timeout), Kill9. The destructor kills (SIGKILL) and reaps a child that is
//    still running, so no test leaves one behind.
//
// Everything the child needs is prepared before fork; between fork and exec it calls only
// async-signal-safe functions. Its stdin is /dev/null. An exec that fails is reported by
// Start (the errno comes back through a close-on-exec pipe), not as exit code 127.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace kv::testing {

// PATH, HOME, LANG, LC_ALL, TZ, TMPDIR and the sanitizers' *_OPTIONS from our environment
// (those set), then `extra` (NAME=value; a name given twice: the last wins).
std::vector<std::string> BasicEnvironment(const std::vector<std::string>& extra = {});

// Where a child's stdout or stderr goes.
struct Output {
  enum class Kind { kNull, kFile, kAppend, kPipe, kFd, kStdout };
  Kind kind = Kind::kNull;
  std::string path;  // kFile (truncated) and kAppend
  int fd = -1;       // kFd: a descriptor the caller owns (still open after Start)

  static Output Null() { return {}; }
  static Output File(std::string p) { return {Kind::kFile, std::move(p), -1}; }
  static Output AppendTo(std::string p) { return {Kind::kAppend, std::move(p), -1}; }
  // stdout only: a pipe whose read end Child::stdout_fd() gives.
  static Output Pipe() { return {Kind::kPipe, "", -1}; }
  static Output Fd(int f) { return {Kind::kFd, "", f}; }
  // stderr only: wherever stdout goes (one interleaved stream).
  static Output SameAsStdout() { return {Kind::kStdout, "", -1}; }
};

struct ChildOptions {
  std::vector<std::string> env;  // NAME=value on top of BasicEnvironment()
  Output out;
  Output err;
};

// One child process. Not thread-safe (one owner).
class Child {
 public:
  Child() = default;
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Starts args[0] (a path; no PATH search) with argv `args`. False with *error (nothing
  // is running then) when a file cannot be opened, fork fails or exec fails; also false
  // when this Child still runs one.
  bool Start(const std::vector<std::string>& args, const ChildOptions& options, std::string* error);

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  // The read end of the stdout pipe (Output::Pipe), -1 otherwise. The Child closes it on
  // destruction unless TakeStdout() handed it over.
  int stdout_fd() const { return stdout_fd_; }
  int TakeStdout();

  // Sends `sig` when running; returns at once.
  void Signal(int sig) const;
  // True (with *status, a wait status) when the child has exited; never blocks.
  bool Exited(int* status);
  // Waits up to `timeout` for the exit and returns the wait status; -1 when it still ran at
  // the deadline (it is then killed with SIGKILL and reaped). No test failure of its own:
  // the caller asserts on the status (DescribeWait(-1) says what happened).
  int Wait(std::chrono::milliseconds timeout);
  // SIGTERM, then Wait(timeout).
  int Terminate(std::chrono::milliseconds timeout);
  // SIGKILL and reap; the wait status (-1 when nothing was running).
  int Kill9();

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
};

struct RunOptions {
  std::vector<std::string> env;  // NAME=value on top of BasicEnvironment()
  std::chrono::milliseconds timeout{60000};
  bool merge_stderr = true;  // stderr into `out`, interleaved as written (else into `err`)
};

struct RunResult {
  int exit_code = -1;  // when it exited normally; -1 otherwise
  int signal = 0;      // the signal that ended it (SIGKILL after a timeout)
  bool timed_out = false;
  std::string out;    // stdout (and stderr when merged)
  std::string err;    // stderr when not merged
  std::string error;  // why it could not start ("" when it ran)
};

// Runs `args` to completion (see the header comment). A start failure or the timeout adds
// a test failure naming the command; the result says what happened either way.
RunResult RunCommand(const std::vector<std::string>& args, const RunOptions& options = {});

// "exit 0", "signal 9", or for -1 "no exit (still running at the deadline; killed)".
std::string DescribeWait(int status);
// True when a wait status says "exited with code 0".
bool ExitedZero(int status);

}  // namespace kv::testing
