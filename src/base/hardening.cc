#include "base/hardening.h"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <system_error>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kv {
namespace {

namespace fs = std::filesystem;

// The RLIMIT_CORE soft limit found by the first HardenProcess (main only; no threads yet).
std::optional<rlim_t> core_soft_at_start;

absl::Status CallFailed(const char* call) {
  return absl::InternalError(absl::StrCat(call, " failed: ", std::strerror(errno)));
}

// Longest prefix of a bad value quoted back in an error.
constexpr size_t kQuotedValueBytesMax = 64;

}  // namespace

absl::Status HardenProcess() {
  ::umask(077);
  rlimit core{};
  if (::getrlimit(RLIMIT_CORE, &core) != 0) return CallFailed("getrlimit(RLIMIT_CORE)");
  if (!core_soft_at_start.has_value()) core_soft_at_start = core.rlim_cur;
  core.rlim_cur = 0;  // lowering the soft limit is always allowed
  if (::setrlimit(RLIMIT_CORE, &core) != 0) return CallFailed("setrlimit(RLIMIT_CORE, 0)");
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return CallFailed("prctl(PR_SET_DUMPABLE, 0)");
  return absl::OkStatus();
}

absl::Status AllowCoreDumps() {
  rlimit core{};
  if (::getrlimit(RLIMIT_CORE, &core) != 0) return CallFailed("getrlimit(RLIMIT_CORE)");
  if (core_soft_at_start.has_value()) {
    core.rlim_cur = core.rlim_max == RLIM_INFINITY
                        ? *core_soft_at_start
                        : std::min<rlim_t>(*core_soft_at_start, core.rlim_max);
    if (::setrlimit(RLIMIT_CORE, &core) != 0) return CallFailed("setrlimit(RLIMIT_CORE)");
  }
  if (::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0) return CallFailed("prctl(PR_SET_DUMPABLE, 1)");
  return absl::OkStatus();
}

absl::Status ApplyAllowCoreDumpsEnv(const char* value) {
  if (value == nullptr) return absl::OkStatus();
  const std::string v(value);
  if (v == "false" || v == "0" || v == "no") return absl::OkStatus();
  if (v == "true" || v == "1" || v == "yes") return AllowCoreDumps();
  const bool cut = v.size() > kQuotedValueBytesMax;
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid value \"", absl::CHexEscape(cut ? v.substr(0, kQuotedValueBytesMax) : v),
      cut ? "\"..." : "\"", " for ", kAllowCoreDumpsEnv,
      ": expected one of true|false|1|0|yes|no"));
}

absl::StatusOr<PrivateDirChange> MakeDirPrivate(const std::string& dir) {
  PrivateDirChange out;
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot stat ", dir));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(dir, " is not a directory"));
  }
  out.dir_mode_before = st.st_mode & 07777;
  const auto narrow = [&](const std::string& path, mode_t mode) -> absl::Status {
    if ((mode & 077) == 0) return absl::OkStatus();
    if (::chmod(path.c_str(), mode & 07700) != 0) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s is open to group/others (mode %04o) and cannot be made private: %s; run "
          "`chmod -R go-rwx %s` as its owner",
          path, mode & 07777, std::strerror(errno), dir));
    }
    ++out.entries_changed;
    return absl::OkStatus();
  };
  // The top first: once it is 0700, nothing below is reachable by others any more.
  absl::Status s = narrow(dir, st.st_mode);
  if (!s.ok()) return s;
  std::error_code ec;
  // directory_options::none: a symlink to a directory is not descended into.
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string path = it->path().string();
    struct stat est;
    if (::lstat(path.c_str(), &est) != 0) {
      if (errno == ENOENT) continue;  // removed while we walked (a tool's temporary file)
      return absl::ErrnoToStatus(errno, absl::StrCat("cannot stat ", path));
    }
    if (!S_ISDIR(est.st_mode) && !S_ISREG(est.st_mode)) continue;
    s = narrow(path, est.st_mode);
    if (!s.ok()) return s;
  }
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
  }
  return out;
}

}  // namespace kv
