#include "kit/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "gtest/gtest.h"

extern char** environ;

namespace kv::testing {
namespace {

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kPassedThrough[] = {
    "PATH",   "HOME",         "LANG",          "LC_ALL",       "TZ",
    "TMPDIR", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"};

std::string NameOf(const std::string& pair) { return pair.substr(0, pair.find('=')); }

// Opens an Output's file; -1 with *error on failure. kNull opens /dev/null.
int OpenOutput(const Output& o, std::string* error) {
  int fd = -1;
  switch (o.kind) {
    case Output::Kind::kNull:
      fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
      break;
    case Output::Kind::kFile:
      fd = ::open(o.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      break;
    case Output::Kind::kAppend:
      fd = ::open(o.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      break;
    default:
      return -1;
  }
  if (fd < 0)
    *error = "open " + (o.path.empty() ? "/dev/null" : o.path) + ": " + std::strerror(errno);
  return fd;
}

// An unnamed file for a capture (O_TMPFILE, else a file unlinked at once); -1 on failure.
int CaptureFile() {
  int fd = ::open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  char tmpl[] = "/tmp/kvtest-capture.XXXXXX";
  fd = ::mkostemp(tmpl, O_CLOEXEC);
  if (fd >= 0) ::unlink(tmpl);
  return fd;
}

std::string ReadAllFrom(int fd) {
  std::string out;
  char buf[16384];
  off_t off = 0;
  while (true) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return out;
}

std::string Command(const std::vector<std::string>& args) {
  std::string s;
  for (const std::string& a : args) s += (s.empty() ? "" : " ") + a;
  return s;
}

bool WaitPid(pid_t pid, milliseconds timeout, int* status) {
  const auto deadline = SteadyClock::now() + timeout;
  while (true) {
    const pid_t w = ::waitpid(pid, status, WNOHANG);
    if (w == pid) return true;
    if (w < 0 && errno != EINTR) return false;
    if (SteadyClock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(2));
  }
}

}  // namespace

std::vector<std::string> BasicEnvironment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (const char* name : kPassedThrough) {
    if (const char* v = std::getenv(name)) env.push_back(std::string(name) + "=" + v);
  }
  for (const std::string& e : extra) {
    const std::string name = NameOf(e);
    std::erase_if(env, [&](const std::string& have) { return NameOf(have) == name; });
    env.push_back(e);
  }
  return env;
}

Child::~Child() {
  if (pid_ > 0) Kill9();
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
}

bool Child::Start(const std::vector<std::string>& args, const ChildOptions& options,
                  std::string* error) {
  error->clear();
  if (pid_ > 0) {
    *error = "already running";
    return false;
  }
  if (args.empty()) {
    *error = "no command";
    return false;
  }
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  stdout_fd_ = -1;
  // Descriptors for the child: out, err (owned ones closed below), the exec-error pipe.
  int out = -1, err = -1, pipe_read = -1;
  bool close_out = true, close_err = true;
  if (options.out.kind == Output::Kind::kPipe) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      *error = std::string("pipe2: ") + std::strerror(errno);
      return false;
    }
    pipe_read = fds[0];
    out = fds[1];
  } else if (options.out.kind == Output::Kind::kFd) {
    out = options.out.fd;
    close_out = false;
  } else if (options.out.kind == Output::Kind::kStdout) {
    *error = "Output::SameAsStdout() is for stderr";
    return false;
  } else {
    out = OpenOutput(options.out, error);
  }
  if (options.err.kind == Output::Kind::kStdout) {
    err = out;
    close_err = false;
  } else if (options.err.kind == Output::Kind::kFd) {
    err = options.err.fd;
    close_err = false;
  } else if (options.err.kind == Output::Kind::kPipe) {
    *error = "Output::Pipe() is for stdout";
  } else {
    err = OpenOutput(options.err, error);
  }
  const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int exec_pipe[2] = {-1, -1};
  const bool ok = out >= 0 && err >= 0 && devnull >= 0 && ::pipe2(exec_pipe, O_CLOEXEC) == 0;
  auto close_ours = [&] {
    if (close_out && out >= 0) ::close(out);
    if (close_err && err >= 0 && err != out) ::close(err);
    if (devnull >= 0) ::close(devnull);
    if (exec_pipe[1] >= 0) ::close(exec_pipe[1]);
  };
  if (!ok) {
    if (error->empty()) *error = std::string("open/pipe: ") + std::strerror(errno);
    close_ours();
    if (exec_pipe[0] >= 0) ::close(exec_pipe[0]);
    if (pipe_read >= 0) ::close(pipe_read);
    return false;
  }

  std::vector<std::string> args_copy = args, env_copy = BasicEnvironment(options.env);
  std::vector<char*> argv, envp;
  for (std::string& a : args_copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& e : env_copy) envp.push_back(e.data());
  envp.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid == 0) {
    // dup2 clears FD_CLOEXEC on the new descriptor; every other fd of ours is CLOEXEC.
    if (::dup2(devnull, STDIN_FILENO) < 0 || ::dup2(out, STDOUT_FILENO) < 0 ||
        ::dup2(err, STDERR_FILENO) < 0) {
      const int e = errno;
      (void)!::write(exec_pipe[1], &e, sizeof e);
      _exit(126);
    }
    ::execve(argv[0], argv.data(), envp.data());
    const int e = errno;
    (void)!::write(exec_pipe[1], &e, sizeof e);
    _exit(127);
  }
  const int fork_errno = errno;
  close_ours();
  if (pid < 0) {
    ::close(exec_pipe[0]);
    if (pipe_read >= 0) ::close(pipe_read);
    *error = std::string("fork: ") + std::strerror(fork_errno);
    return false;
  }
  // EOF on the exec pipe: exec succeeded (the write end closed on exec).
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (n > 0) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (pipe_read >= 0) ::close(pipe_read);
    *error = "exec " + args[0] + ": " + std::strerror(child_errno);
    return false;
  }
  pid_ = pid;
  stdout_fd_ = pipe_read;
  return true;
}

int Child::TakeStdout() {
  const int fd = stdout_fd_;
  stdout_fd_ = -1;
  return fd;
}

void Child::Signal(int sig) const {
  if (pid_ > 0) ::kill(pid_, sig);
}

bool Child::Exited(int* status) {
  if (pid_ <= 0) return false;
  if (::waitpid(pid_, status, WNOHANG) != pid_) return false;
  pid_ = -1;
  return true;
}

int Child::Wait(milliseconds timeout) {
  if (pid_ <= 0) return -1;
  int status = 0;
  if (!WaitPid(pid_, timeout, &status)) {
    Kill9();
    return -1;
  }
  pid_ = -1;
  return status;
}

int Child::Terminate(milliseconds timeout) {
  Signal(SIGTERM);
  return Wait(timeout);
}

int Child::Kill9() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return status;
}

RunResult RunCommand(const std::vector<std::string>& args, const RunOptions& options) {
  RunResult r;
  const int out = CaptureFile();
  const int err = options.merge_stderr ? -1 : CaptureFile();
  if (out < 0 || (!options.merge_stderr && err < 0)) {
    r.error = std::string("capture file: ") + std::strerror(errno);
  } else {
    ChildOptions co;
    co.env = options.env;
    co.out = Output::Fd(out);
    co.err = options.merge_stderr ? Output::SameAsStdout() : Output::Fd(err);
    Child child;
    if (child.Start(args, co, &r.error)) {
      const int status = child.Wait(options.timeout);
      if (status == -1) {
        r.timed_out = true;
        r.signal = SIGKILL;
      } else if (WIFEXITED(status)) {
        r.exit_code = WEXITSTATUS(status);
      } else if (WIFSIGNALED(status)) {
        r.signal = WTERMSIG(status);
      }
      r.out = ReadAllFrom(out);
      if (err >= 0) r.err = ReadAllFrom(err);
    }
  }
  if (out >= 0) ::close(out);
  if (err >= 0) ::close(err);
  if (!r.error.empty()) {
    ADD_FAILURE() << "cannot run `" << Command(args) << "`: " << r.error;
  } else if (r.timed_out) {
    ADD_FAILURE() << "`" << Command(args) << "` still ran after " << options.timeout.count()
                  << " ms: killed with SIGKILL. Its output:\n"
                  << r.out << r.err;
  }
  return r;
}

std::string DescribeWait(int status) {
  if (status == -1) return "no exit (still running at the deadline; killed)";
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

bool ExitedZero(int status) {
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace kv::testing
