// The master key: 32 random bytes kept in a file OUTSIDE the data dir, from which every
// card-key secret is derived (storage/key_cipher.h). Losing the file loses every stocked
// key; leaking it leaks them all, so the file must be private to its owner.
//
// File format: exactly 64 hex characters (either case), optionally followed by one '\n'.
// Nothing else: no comments, no surrounding whitespace.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/random.h"

namespace kv {

struct MasterKey {
  // Wipes the bytes so that a destroyed copy does not linger in freed memory.
  ~MasterKey();

  std::array<uint8_t, 32> bytes;
};

// Reads the master key file at `path`.
//
// Errors (messages name the path, never the file's content):
//   NotFound            the file does not exist;
//   PermissionDenied    the process may not read it (other errno values map through
//                       absl::ErrnoToStatus);
//   FailedPrecondition  it is not a regular file, or it is readable/writable/executable by
//                       group or others (mode & 077 != 0): fix with chmod 600;
//   InvalidArgument     the content is not 64 hex characters with an optional final '\n'.
// The permission check comes before the content is read, so a leaked key is refused even
// when it is well formed. Thread-safe (touches only the file system).
absl::StatusOr<MasterKey> LoadMasterKeyFile(const std::string& path);

// Creates a new master key file at `path` holding 32 bytes from `random` (not owned, must
// be non-null; pass SecureRandom::Get() outside tests), and returns the key.
//
// The file is created exclusively with mode 0600 (regardless of the umask) and written as
// 64 lowercase hex characters plus '\n'; the file and then its parent directory are
// fsync'ed before returning, so a returned key survives a crash.
// Errors: AlreadyExists when anything (even a dangling symlink) exists at `path`, which is
// then left untouched; otherwise the errno-mapped status of the failing call (e.g. NotFound
// when the parent directory is missing). On any failure after the file was created, the
// file is unlinked, so an error never leaves a key behind. Thread-safe.
absl::StatusOr<MasterKey> CreateMasterKeyFile(const std::string& path, Random* random);

// Returns OK when the key file lies outside `data_dir`, InvalidArgument ("master key file
// must be outside the data dir (...)") when it lies inside it or is the dir itself, or when
// either path is empty. Both paths may be relative (to the current directory) and need not
// exist. Containment is checked component-wise ("/d2/key" is not inside "/d") on several
// views of each path, refusing if any view is inside: the lexically normalized absolute
// path; for the key, its parent directory resolved through realpath plus the file name, and
// the path resolved through every existing symlink; for the data dir, its path resolved
// through its existing prefix. So "dir/../dir/key" and "link-to-dir/key" are refused.
// Thread-safe, though the answer is only as current as the file system it looked at.
[[nodiscard]] absl::Status CheckKeyFileOutsideDir(const std::string& key_path,
                                                  const std::string& data_dir);

}  // namespace kv
