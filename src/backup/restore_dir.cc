#include "backup/restore_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/crash_point.h"

namespace kv::backup {
namespace {

namespace fs = std::filesystem;

constexpr size_t kSuffixHex = 12;

struct Split {
  std::string parent, name;
};

// The target's parent dir and last component; InvalidArgument for "", "/", "." or "..".
absl::StatusOr<Split> SplitTarget(std::string target) {
  while (target.size() > 1 && target.back() == '/') target.pop_back();
  const fs::path p(target);
  const std::string name = p.filename().string();
  if (name.empty() || name == "." || name == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("restore target '", target, "' must name a directory to create"));
  }
  return Split{p.has_parent_path() ? p.parent_path().string() : std::string("."), name};
}

absl::Status Errno(int e, const std::string& what) {
  return absl::ErrnoToStatus(e, absl::StrCat(what, ": ", std::strerror(e)));
}

absl::Status FsyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | flags);
  if (fd < 0) return Errno(errno, absl::StrCat("cannot open ", path, " to sync it"));
  const int rc = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  if (rc != 0) return Errno(e, absl::StrCat("cannot sync ", path));
  return absl::OkStatus();
}

bool IsOurSuffix(std::string_view s) {
  if (s.size() != kSuffixHex) return false;
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// The marker of `dir` opened and flock'd (fd >= 0) when it is ours and no live restore
// holds it; -1 otherwise.
int OpenDeadMarker(const std::string& dir) {
  const std::string marker = dir + "/" + kMarkerName;
  const int fd = ::open(marker.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return -1;
  struct stat st {};
  char buf[sizeof(kMarkerText) + 1];
  ssize_t n = -1;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ::flock(fd, LOCK_EX | LOCK_NB) == 0) {
    n = ::pread(fd, buf, sizeof(buf), 0);
  }
  if (n != static_cast<ssize_t>(sizeof(kMarkerText) - 1) ||
      std::memcmp(buf, kMarkerText, sizeof(kMarkerText) - 1) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> RemoveLeftovers(const std::string& target) {
  auto split = SplitTarget(target);
  if (!split.ok()) return split.status();
  const std::string prefix = split->name + kRestoringInfix;
  std::error_code ec;
  fs::directory_iterator it(split->parent, ec);
  if (ec == std::errc::no_such_file_or_directory) return std::vector<std::string>();
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot list ", split->parent, " for leftover restores: ", ec.message()));
  }
  std::vector<std::string> removed;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!absl::StartsWith(name, prefix) || !IsOurSuffix(name.substr(prefix.size()))) continue;
    const fs::file_status st = fs::symlink_status(it->path(), ec);
    if (ec || !fs::is_directory(st)) continue;
    const std::string dir = it->path().string();
    const int fd = OpenDeadMarker(dir);
    if (fd < 0) continue;
    fs::remove_all(dir, ec);  // under the flock: no restore can be starting in it
    ::close(fd);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot remove ", dir, " (left by an interrupted restore): ", ec.message()));
    }
    removed.push_back(dir);
  }
  if (ec)
    return absl::UnavailableError(absl::StrCat("listing ", split->parent, ": ", ec.message()));
  return removed;
}

absl::StatusOr<RestoreDir> RestoreDir::Begin(const std::string& target) {
  auto split = SplitTarget(target);
  if (!split.ok()) return split.status();
  unsigned char rnd[kSuffixHex / 2];
  if (RAND_bytes(rnd, sizeof(rnd)) != 1) return absl::InternalError("RAND_bytes failed");
  const std::string path = absl::StrCat(
      split->parent, "/", split->name, kRestoringInfix,
      absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(rnd), sizeof(rnd))));
  if (::mkdir(path.c_str(), 0700) != 0) return Errno(errno, absl::StrCat("cannot create ", path));
  const std::string marker = path + "/" + kMarkerName;
  const int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int e = errno;
    ::rmdir(path.c_str());
    return Errno(e, absl::StrCat("cannot create ", marker));
  }
  // Locked before it says what it is: a cleaner never takes a live staging dir for a dead one.
  RestoreDir dir(target, path, fd);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0)
    return Errno(errno, absl::StrCat("cannot lock ", marker));
  const size_t len = sizeof(kMarkerText) - 1;
  if (::write(fd, kMarkerText, len) != static_cast<ssize_t>(len) || ::fsync(fd) != 0) {
    return Errno(errno, absl::StrCat("cannot write ", marker));
  }
  if (::mkdir(dir.db_dir().c_str(), 0700) != 0) {
    return Errno(errno, absl::StrCat("cannot create ", dir.db_dir()));
  }
  return dir;
}

RestoreDir::RestoreDir(RestoreDir&& o) noexcept
    : target_(std::move(o.target_)),
      path_(std::exchange(o.path_, std::string())),
      marker_fd_(std::exchange(o.marker_fd_, -1)) {}

RestoreDir::~RestoreDir() { Remove(); }

void RestoreDir::Remove() {
  if (!path_.empty()) {
    std::error_code ec;
    fs::remove_all(path_, ec);
    path_.clear();
  }
  if (marker_fd_ >= 0) {
    ::close(marker_fd_);
    marker_fd_ = -1;
  }
}

absl::Status RestoreDir::Commit() {
  const std::string db = db_dir();
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(db, ec)) {
    if (!e.is_regular_file(ec)) continue;
    if (absl::Status s = FsyncPath(e.path().string(), O_NOFOLLOW); !s.ok()) return s;
  }
  if (ec) return absl::UnavailableError(absl::StrCat("listing ", db, ": ", ec.message()));
  if (absl::Status s = FsyncPath(db, O_DIRECTORY); !s.ok()) return s;
  KV_CRASH_POINT("restore.before_rename");
  if (::rename(db.c_str(), target_.c_str()) != 0) {
    const int e = errno;
    return Errno(e, absl::StrCat("cannot move the restored copy ", db, " to ", target_,
                                 e == ENOTEMPTY || e == EEXIST
                                     ? " (something was written into it during the restore)"
                                     : ""));
  }
  // The target is complete; the parent's fsync makes its name durable.
  const std::string parent = SplitTarget(target_)->parent;
  absl::Status synced = FsyncPath(parent, O_DIRECTORY);
  KV_CRASH_POINT("restore.after_rename");
  Remove();
  if (!synced.ok()) {
    return absl::Status(synced.code(),
                        absl::StrCat("restored to ", target_, ", but ", synced.message()));
  }
  return absl::OkStatus();
}

}  // namespace kv::backup
