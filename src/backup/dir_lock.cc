#include "backup/dir_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace kv::backup {
namespace {

const char* OpName(BackupOp op) {
  switch (op) {
    case BackupOp::kRead:
      return "read";
    case BackupOp::kAppend:
      return "create";
    case BackupOp::kDelete:
      return "purge";
  }
  return "?";
}

// Opens (creating if needed) a lock file. -1 with errno set on failure.
int OpenLockFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);  // flock works read-only
  }
  return fd;
}

// flock, retried every 10 ms until `deadline` while another holder conflicts; false with
// errno set (EWOULDBLOCK: still held by another) otherwise.
bool Flock(int fd, int how, absl::Time deadline) {
  while (::flock(fd, how | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK || absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

}  // namespace

absl::StatusOr<DirLock> DirLock::Acquire(const std::string& dir, BackupOp op, absl::Duration wait) {
  // Waiting is for operations that end by themselves (a purge, a listing); real time is
  // right here: the other holder is another process.
  const absl::Time deadline = absl::Now() + wait;
  DirLock lock;
  const auto busy = [&](const char* holder) {
    return absl::AbortedError(absl::StrCat(
        "backup dir ", dir, " is busy: another keyvend operation (", holder, ") is using it; this ",
        OpName(op), " did nothing, try again when it has finished"));
  };
  if (op == BackupOp::kAppend || op == BackupOp::kDelete) {
    const std::string path = absl::StrCat(dir, "/", kAppendLockName);
    lock.append_fd_ = OpenLockFile(path);
    if (lock.append_fd_ < 0) return absl::ErrnoToStatus(errno, absl::StrCat("opening ", path));
    if (!Flock(lock.append_fd_, LOCK_EX, deadline)) {
      if (errno == EWOULDBLOCK) return busy("a create or purge");
      return absl::ErrnoToStatus(errno, absl::StrCat("locking ", path));
    }
  }
  if (op == BackupOp::kRead || op == BackupOp::kDelete) {
    const std::string path = absl::StrCat(dir, "/", kDeleteLockName);
    lock.delete_fd_ = OpenLockFile(path);
    if (lock.delete_fd_ < 0) {
      if (op == BackupOp::kRead && (errno == ENOENT || errno == EACCES || errno == EROFS)) {
        return lock;  // nobody can write this dir (or no keyvend writer ever did)
      }
      return absl::ErrnoToStatus(errno, absl::StrCat("opening ", path));
    }
    if (!Flock(lock.delete_fd_, op == BackupOp::kRead ? LOCK_SH : LOCK_EX, deadline)) {
      if (errno == EWOULDBLOCK) {
        return busy(op == BackupOp::kRead ? "a purge" : "a list, verify or restore");
      }
      return absl::ErrnoToStatus(errno, absl::StrCat("locking ", path));
    }
  }
  return lock;
}

DirLock::DirLock(DirLock&& other) noexcept
    : append_fd_(std::exchange(other.append_fd_, -1)),
      delete_fd_(std::exchange(other.delete_fd_, -1)) {}

DirLock& DirLock::operator=(DirLock&& other) noexcept {
  if (this != &other) {
    Release();
    append_fd_ = std::exchange(other.append_fd_, -1);
    delete_fd_ = std::exchange(other.delete_fd_, -1);
  }
  return *this;
}

DirLock::~DirLock() { Release(); }

void DirLock::Release() {
  // Closing the descriptor drops its flock.
  if (append_fd_ >= 0) ::close(append_fd_);
  if (delete_fd_ >= 0) ::close(delete_fd_);
  append_fd_ = delete_fd_ = -1;
}

}  // namespace kv::backup
