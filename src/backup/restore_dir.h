// The staging dir of a restore (issue 15): a restore never writes into its target. It
// fills `<target>.restoring-<12 hex>/db`, a sibling of the target in the same parent, and
// moves the finished copy into place with one rename(2), so the target is either as it was
// (absent or an empty dir) or a complete, synced restore — never half filled.
//
//   <parent>/<name>.restoring-3f9a0c12be47/          0700, created by Begin
//       KEYVEND-RESTORING                            the marker: kMarkerText, flock'd while
//                                                    the restore runs
//       db/                                          0700, what RocksDB restores into
//
// Commit fsyncs every file of db/ and db/ itself, renames db/ to the target (an existing
// empty target dir is replaced: rename(2) allows it for an empty directory), fsyncs the
// parent, then removes the staging dir. A crash before the rename leaves the target as it
// was plus a staging dir; a crash after it leaves a complete target plus a staging dir
// holding only the marker. The next restore into the same target removes such leftovers
// (RemoveLeftovers) — only dirs that are clearly ours: the exact name pattern, a real
// directory (not a symlink), a regular file KEYVEND-RESTORING with exactly kMarkerText, and
// no live restore holding its flock.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kv::backup {

inline constexpr char kRestoringInfix[] = ".restoring-";
inline constexpr char kMarkerName[] = "KEYVEND-RESTORING";
inline constexpr char kMarkerText[] =
    "keyvend-backup restore staging dir: removed by the next restore into the same target\n";

// Removes the staging dirs of dead restores into `target` (see above) and returns their
// paths. Anything that does not match every condition is left alone (and not reported).
// A missing parent has none. Errors: the parent cannot be listed, or a leftover of ours
// cannot be removed.
absl::StatusOr<std::vector<std::string>> RemoveLeftovers(const std::string& target);

class RestoreDir {
 public:
  // Creates the staging dir for `target` (whose parent must exist) with its marker (synced,
  // flock'd for the life of this object) and db/. Errors: errno-mapped, naming the path.
  static absl::StatusOr<RestoreDir> Begin(const std::string& target);

  RestoreDir(RestoreDir&& o) noexcept;
  RestoreDir& operator=(RestoreDir&&) = delete;
  RestoreDir(const RestoreDir&) = delete;
  // Removes the staging dir unless Commit succeeded up to its rename (it is then removed
  // by Commit). The caller makes sure nothing writes into db/ any more.
  ~RestoreDir();

  const std::string& path() const { return path_; }
  std::string db_dir() const { return path_ + "/db"; }

  // fsync db/'s files and db/, crash point restore.before_rename, rename db/ → target,
  // fsync the parent, crash point restore.after_rename, remove the staging dir. Errors
  // before the rename leave the target untouched (the destructor removes the staging dir).
  absl::Status Commit();

 private:
  RestoreDir(std::string target, std::string path, int marker_fd)
      : target_(std::move(target)), path_(std::move(path)), marker_fd_(marker_fd) {}
  void Remove();

  std::string target_;
  std::string path_;    // "" once removed or moved from
  int marker_fd_ = -1;  // holds the flock
};

}  // namespace kv::backup
