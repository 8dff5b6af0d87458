// WriteHealth: whether the database takes writes now, and why not (issue 15, disk full).
//
// RocksDB stops taking writes after a background error (a WAL append or sync that failed,
// a flush that found the disk full) until its error handler recovers: by itself for a full
// disk once space returns (the SstFileManager polls free space and resumes); an EIO on the
// WAL's sync RocksDB 7.8 treats as fatal (only a restart helps). Writes failing meanwhile answer
// 503 storage_unavailable; reads and probes go on. This object is the one place that knows
// which state the database is in, for /readyz, /metrics and the log:
//  - RocksDB's own events (OnBackgroundError, OnErrorRecoveryEnd) through the listener;
//  - the outcome of every synced write (RecordWrite), because a failed WAL append fails
//    the write even when RocksDB does not count it as a background error.
// A failed write or background error makes it unwritable; the next successful write or a
// completed recovery makes it writable again. Each change is logged once (not per write).
// Nothing here writes or calls DB::Resume: a write into a WAL writer that just failed
// aborts Debian's librocksdb (built with assertions), and RocksDB's own recovery is the
// one that replaces it.
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "base/mutex.h"
#include "rocksdb/listener.h"

namespace kv::storage {

class WriteHealth {
 public:
  struct State {
    bool writable = true;
    std::string error;              // why not (RocksDB's message), empty when writable
    int64_t since_unix_ms = 0;      // when it became unwritable, 0 when writable
    uint64_t errors_total = 0;      // failed writes and background errors, ever
    uint64_t recoveries_total = 0;  // times it became writable again
  };

  WriteHealth();
  WriteHealth(const WriteHealth&) = delete;
  WriteHealth& operator=(const WriteHealth&) = delete;
  // The listener to put in rocksdb::DBOptions::listeners (shares this object's state; it
  // may outlive this object only as long as the DB does, which the Db guarantees).
  std::shared_ptr<rocksdb::EventListener> listener() const { return listener_; }

  // The outcome of a write (the committer's or a direct one).
  void RecordWrite(const absl::Status& s);
  // RocksDB's background error / the end of its recovery (called by the listener).
  void RecordBackgroundError(const std::string& what);
  void RecordRecovered(bool ok, const std::string& what);

  State state() const;
  // Cheap: one atomic load (for the write path's callers that only want the bit).
  bool writable() const { return writable_.load(std::memory_order_acquire); }

 private:
  void Fail(const std::string& what);
  void Heal(const char* how);

  mutable Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_);

  std::atomic<bool> writable_{true};
  std::shared_ptr<rocksdb::EventListener> listener_;
};

}  // namespace kv::storage
