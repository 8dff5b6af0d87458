#include "storage/master_key.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"

namespace kv {
namespace {

namespace fs = std::filesystem;

constexpr size_t kKeyBytes = sizeof(MasterKey::bytes);
constexpr size_t kHexChars = 2 * kKeyBytes;

// Closes a descriptor on every return path.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() {
    if (fd_ >= 0) close(fd_);
  }
  // Closes now and reports close(2)'s result, since for a written file a failed close can
  // be the first sign of a lost write.
  int Close() {
    const int rc = close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

int HexNibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes straight into the key rather than through HexDecode's std::string so that no
// extra heap copy of the key is left behind.
bool DecodeKey(const char* hex, MasterKey* key) {
  for (size_t i = 0; i < kKeyBytes; ++i) {
    const int hi = HexNibble(hex[2 * i]);
    const int lo = HexNibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    key->bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

absl::Status Malformed(const std::string& path) {
  return absl::InvalidArgumentError(
      absl::StrCat("malformed master key file ", path, ": expected 64 hex characters"));
}

absl::Status ErrnoError(int err, const char* what, const std::string& path) {
  return absl::ErrnoToStatus(err, absl::StrCat(what, " ", path));
}

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Makes the new directory entry durable; without this a crash can lose the file even
// though its contents were fsync'ed.
absl::Status SyncParentDir(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) parent = ".";
  const int fd = open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "cannot open parent directory of", path);
  FdCloser closer(fd);
  if (fsync(fd) != 0) return ErrnoError(errno, "cannot fsync parent directory of", path);
  return absl::OkStatus();
}

// Component-wise, so "/data2/key" is not inside "/data". Both paths are absolute and
// lexically normal; empty components (from a trailing '/') are ignored.
bool IsInside(const fs::path& p, const fs::path& dir) {
  std::vector<fs::path> pc, dc;
  for (const fs::path& c : p) {
    if (!c.empty()) pc.push_back(c);
  }
  for (const fs::path& c : dir) {
    if (!c.empty()) dc.push_back(c);
  }
  if (dc.size() > pc.size()) return false;
  for (size_t i = 0; i < dc.size(); ++i) {
    if (pc[i] != dc[i]) return false;
  }
  return true;
}

}  // namespace

MasterKey::~MasterKey() { OPENSSL_cleanse(bytes.data(), bytes.size()); }

absl::StatusOr<MasterKey> LoadMasterKeyFile(const std::string& path) {
  // O_NONBLOCK keeps a FIFO planted at the path from hanging startup; the S_ISREG check
  // below then refuses it. It has no effect on regular files.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(absl::StrCat("master key file ", path, " does not exist"));
    }
    return ErrnoError(err, "cannot open master key file", path);
  }
  FdCloser closer(fd);

  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoError(errno, "cannot stat master key file", path);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("master key file ", path, " is not a regular file"));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "master key file ", path, " must not be readable by group or others (chmod 600)"));
  }

  // One byte more than the longest valid file, so an over-long file is detected without
  // reading all of it.
  char buf[kHexChars + 2];
  size_t n = 0;
  while (n < sizeof(buf)) {
    const ssize_t r = read(fd, buf + n, sizeof(buf) - n);
    if (r < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      OPENSSL_cleanse(buf, sizeof(buf));
      return ErrnoError(err, "cannot read master key file", path);
    }
    if (r == 0) break;
    n += static_cast<size_t>(r);
  }

  MasterKey key;
  const bool well_formed =
      (n == kHexChars || (n == kHexChars + 1 && buf[kHexChars] == '\n')) && DecodeKey(buf, &key);
  OPENSSL_cleanse(buf, sizeof(buf));
  if (!well_formed) return Malformed(path);
  return key;
}

absl::StatusOr<MasterKey> CreateMasterKeyFile(const std::string& path, Random* random) {
  MasterKey key;
  random->Fill(key.bytes.data(), key.bytes.size());

  static constexpr char kDigits[] = "0123456789abcdef";
  char text[kHexChars + 1];
  for (size_t i = 0; i < kKeyBytes; ++i) {
    text[2 * i] = kDigits[key.bytes[i] >> 4];
    text[2 * i + 1] = kDigits[key.bytes[i] & 0xf];
  }
  text[kHexChars] = '\n';

  // The key is written to a temporary name and linked into place only when complete and
  // synced: a crash at any moment leaves either no key file or a whole one (never an empty
  // or partial file that would block every later start). link() refuses an existing path,
  // so an existing key is never overwritten.
  if (access(path.c_str(), F_OK) == 0 || errno != ENOENT) {
    OPENSSL_cleanse(text, sizeof(text));
    return absl::AlreadyExistsError(
        absl::StrCat("master key file ", path, " already exists; refusing to overwrite it"));
  }
  uint8_t suffix_bytes[6];
  random->Fill(suffix_bytes, sizeof(suffix_bytes));
  std::string tmp = path + ".tmp-";
  for (uint8_t b : suffix_bytes) {
    tmp.push_back(kDigits[b >> 4]);
    tmp.push_back(kDigits[b & 0xf]);
  }
  // O_EXCL also refuses a symlink at the path, so the key cannot be redirected elsewhere.
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
  if (fd < 0) {
    const int err = errno;
    OPENSSL_cleanse(text, sizeof(text));
    return ErrnoError(err, "cannot create master key file", path);
  }
  FdCloser closer(fd);

  absl::Status status;
  // The umask can only narrow 0600, but a key file the owner cannot read is as useless as
  // one others can, so the mode is set exactly.
  if (fchmod(fd, 0600) != 0) {
    status = ErrnoError(errno, "cannot chmod master key file", path);
  } else if (!WriteAll(fd, text, sizeof(text))) {
    status = ErrnoError(errno, "cannot write master key file", path);
  } else if (fsync(fd) != 0) {
    status = ErrnoError(errno, "cannot fsync master key file", path);
  } else if (closer.Close() != 0) {
    status = ErrnoError(errno, "cannot close master key file", path);
  } else if (link(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    status = err == EEXIST
                 ? absl::AlreadyExistsError(absl::StrCat(
                       "master key file ", path, " already exists; refusing to overwrite it"))
                 : ErrnoError(err, "cannot create master key file", path);
  } else {
    unlink(tmp.c_str());
    status = SyncParentDir(path);  // makes both the new name and the removal durable
    if (!status.ok()) unlink(path.c_str());
  }
  OPENSSL_cleanse(text, sizeof(text));
  // The caller gets no key on failure, so no file that may hold it stays behind.
  unlink(tmp.c_str());
  if (!status.ok()) return status;
  return key;
}

absl::Status CheckKeyFileOutsideDir(const std::string& key_path, const std::string& data_dir) {
  if (key_path.empty() || data_dir.empty()) {
    return absl::InvalidArgumentError(
        "master key file must be outside the data dir (key file and data dir must be given)");
  }
  std::error_code ec;
  const fs::path key_abs = fs::absolute(key_path, ec).lexically_normal();
  if (ec) return absl::InternalError(absl::StrCat("cannot make ", key_path, " absolute"));
  const fs::path dir_abs = fs::absolute(data_dir, ec).lexically_normal();
  if (ec) return absl::InternalError(absl::StrCat("cannot make ", data_dir, " absolute"));

  std::vector<fs::path> key_views = {key_abs};
  std::vector<fs::path> dir_views = {dir_abs};
  // A symlinked directory makes a path look elsewhere than where the file really is, so
  // the resolved views are checked too. Resolution failures just leave a view out: the
  // lexical view is always checked.
  if (key_abs.has_filename()) {
    const fs::path parent_real = fs::canonical(key_abs.parent_path(), ec);
    if (!ec) key_views.push_back(parent_real / key_abs.filename());
  }
  fs::path resolved = fs::weakly_canonical(key_abs, ec);
  if (!ec) key_views.push_back(resolved);
  resolved = fs::weakly_canonical(dir_abs, ec);
  if (!ec) dir_views.push_back(resolved);

  for (const fs::path& k : key_views) {
    for (const fs::path& d : dir_views) {
      if (IsInside(k, d)) {
        return absl::InvalidArgumentError(
            absl::StrCat("master key file must be outside the data dir (key file ", key_path,
                         " resolves to ", k.string(), ", inside data dir ", data_dir, ")"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace kv
