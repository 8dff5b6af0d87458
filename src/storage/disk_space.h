// DiskSpaceGuard: refuses the shop's writes while the data dir's file system is nearly full,
// BEFORE RocksDB meets ENOSPC (issue 15, disk full).
//
// Why not let RocksDB hit the wall: a WAL append that fails for want of space leaves
// RocksDB's WAL writer in an error state that its own recovery then flushes, and Debian's
// librocksdb 7.8 is built with assertions on, which abort the process on that path
// (`WritableFileWriter::AssertFalseAndGetStatusForPrevError`, seen in tests/
// http_disk_full_test.cc before this guard). A database that stops taking writes with
// `min_free_bytes` still free also keeps room for the flushes and compactions that follow,
// and recovers the moment space returns (no RocksDB error to recover from). CockroachDB's
// "ballast" and etcd's space quota are the same idea.
//
// A thread of its own reads statvfs(dir) every `interval`; Check() is one atomic load, so
// the group committer asks it before every group (storage/db.cc composes it with the
// write_fault hook). Between two reads at most `interval` worth of writes can land (the
// default minimum, 256 MiB, is far above what 250 ms of orders writes). RocksDB's own
// disk-full handling (storage/write_health.h) stays as the second line. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "base/mutex.h"

namespace kv::storage {

class DiskSpaceGuard {
 public:
  // Reads the free space once at once (so a full disk refuses the very first write), then
  // every `interval`. min_free_bytes must be > 0.
  DiskSpaceGuard(std::string dir, uint64_t min_free_bytes,
                 std::chrono::milliseconds interval = std::chrono::milliseconds(250));
  ~DiskSpaceGuard();  // stops and joins the thread
  DiskSpaceGuard(const DiskSpaceGuard&) = delete;
  DiskSpaceGuard& operator=(const DiskSpaceGuard&) = delete;

  // OK while at least min_free_bytes are free (or the free space cannot be read: then
  // RocksDB's own errors decide); else Unavailable "disk almost full: ..." (IsRefusal
  // recognises it) naming the free and the minimum.
  absl::Status Check() const;
  bool low() const { return low_.load(std::memory_order_acquire); }
  // Bytes free for an unprivileged writer at the last read; -1 when unreadable.
  int64_t free_bytes() const { return free_.load(std::memory_order_acquire); }
  uint64_t min_free_bytes() const { return min_free_; }
  // True when `s` is this guard's refusal (not a failure of the database).
  static bool IsRefusal(const absl::Status& s);

 private:
  void Read();
  void Loop(std::chrono::milliseconds interval);

  const std::string dir_;
  const uint64_t min_free_;
  std::atomic<int64_t> free_{-1};
  std::atomic<bool> low_{false};
  Mutex mu_;
  CondVar cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace kv::storage
