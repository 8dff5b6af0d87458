// GroupCommitter: the one thread that makes the shop's synced writes (issue 11). A caller
// queues its batch and waits; the committer takes every queued batch (up to a bounded
// group), merges them into one WriteBatch, makes ONE synced RocksDB write and wakes every
// member of the group with the group's status. While it is inside that write, new callers
// queue for the next group (pipelined): one fsync serves every batch that arrived during
// the previous one.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "base/mutex.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"

namespace kv::storage {

// Most batches in one group: a bound on one write's latency and on the waiters one
// wakeup releases (far above what worker_threads_max handlers can queue in one fsync).
inline constexpr size_t kGroupBatchesMax = 512;
// Most bytes (of WriteBatch representation) in one group: bounds the merged copy. A batch
// larger than this alone (a big key import) is a group of its own, written without a
// copy. RocksDB's own write group stops at 1 MiB (max_write_batch_group_size_bytes).
inline constexpr size_t kGroupBytesMax = 1 << 20;
static_assert(kGroupBatchesMax >= 2 && kGroupBytesMax >= 64 * 1024);

// Called by the committer before each group's write (DbOptions::write_fault). OK: the
// group is written; an error: the group fails with it and nothing of it is written.
using WriteFaultFn = std::function<absl::Status()>;

// Concatenates `batches` (at least one, each a plain batch: no per-key protection bytes,
// no user timestamps, no 2PC markers — what the shop writes) into one batch with their
// records in order, as RocksDB's own write group does (WriteBatchInternal::Append: the
// representation is a 12-byte header, sequence and count, then the records).
rocksdb::WriteBatch MergeBatches(const std::vector<rocksdb::WriteBatch*>& batches);

// A column family whose merge operator adds int64 operands (counter_merge.h), and the
// handles to rebuild a batch with: `handles[i]` is the handle whose GetID() is i (nullptr
// where no column family has that id).
struct AdditiveCf {
  uint32_t id = 0;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
};

// MergeBatches, with the group's Merges into the additive column family summed per key:
// one operand per key, after the group's other records, instead of one per batch (every
// order merges the same held and orders-per-status counters: at 64 connections that is
// ~2 x 30 memtable inserts and successive-merge counts per group instead of ~2). The same
// final state: additions commute, and nothing else in such a group touches that column
// family. When anything else does (a Put, a Delete), an operand is not 8 bytes, a sum
// would overflow, or a record is of a kind this does not rebuild, the group is merged as
// MergeBatches does, record for record.
rocksdb::WriteBatch MergeBatchesSummingAdds(const std::vector<rocksdb::WriteBatch*>& batches,
                                            const AdditiveCf& additive);

class GroupCommitter {
 public:
  // What the committer has done so far (monotonic; read lock-free, for tests and benches).
  struct Stats {
    uint64_t groups = 0;         // synced writes made (or failed), one per group
    uint64_t batches = 0;        // batches committed (or failed) in them
    uint64_t failed_groups = 0;  // groups whose write (or the fault hook) failed
    uint64_t largest_group = 0;  // most batches in one group
    uint64_t queued = 0;         // batches waiting for a group write that has not begun
  };

  // Starts the committer thread, which writes to `db` (not owned; outlives this object)
  // with sync=true. `fault` may be empty.
  // `additive`, when given, names a column family whose merges a group sums
  // (MergeBatchesSummingAdds).
  // `observe`, when given, is called on the committer thread with each group's outcome
  // BEFORE its members are woken (Db's write health: a caller woken after the Db began to
  // close must not touch the Db again).
  using ObserveFn = std::function<void(const absl::Status&)>;
  GroupCommitter(rocksdb::DB* db, WriteFaultFn fault,
                 std::optional<AdditiveCf> additive = std::nullopt, ObserveFn observe = nullptr);
  // Stop(), then nothing remains.
  ~GroupCommitter();
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Queues `batch` (not owned; the caller keeps it unchanged until this returns) and
  // blocks until the group holding it is durable (its WAL fsync'd) or has failed.
  // Outcomes: OK — the batch is committed and synced; the group's error (every member of a
  // failed group gets the same status, and nothing of the group was written: Unavailable
  // for I/O and disk-full errors, DataLoss for corruption, or what the fault hook
  // returned); Unavailable at once, without queueing, after Stop(). Thread-safe.
  // "Nothing written" is the running database's view: after a failed WAL sync the group's
  // record may be in the WAL file, and the next open replays it whole.
  [[nodiscard]] absl::Status Commit(rocksdb::WriteBatch* batch);

  // The same without waiting: `batch` joins the open group and `done` is called with the
  // group's status on the committer thread once the group is durable or has failed (after
  // Stop(): at once, on the caller's thread, with Unavailable). `done` must be short and
  // must not call Commit (it runs before the next group's write). Thread-safe.
  using DoneFn = std::function<void(const absl::Status&)>;
  void CommitAsync(std::unique_ptr<rocksdb::WriteBatch> batch, DoneFn done);

  // Refuses new commits, writes every batch already queued (their callers get their
  // groups' statuses), then joins the committer. Idempotent; thread-safe.
  void Stop();

  Stats stats() const;

 private:
  // The batches of one synced write and how their callers learn its outcome. Members wait
  // on the group's own mutex, so a wakeup touches neither the queue's lock nor the other
  // groups' waiters.
  struct Group {
    std::vector<rocksdb::WriteBatch*> batches;  // written under mu_ until taken, then read-only
    size_t bytes = 0;
    // CommitAsync's members (like batches: under mu_ until taken, then the committer's).
    std::vector<std::unique_ptr<rocksdb::WriteBatch>> owned;
    std::vector<DoneFn> callbacks;
    Mutex mu;
    CondVar done_cv;
    bool done ABSL_GUARDED_BY(mu) = false;
    absl::Status status ABSL_GUARDED_BY(mu);
  };

  void Run();
  // Adds a batch to the open group (a new one when full); under mu_.
  std::shared_ptr<Group> Enqueue(rocksdb::WriteBatch* batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The next group to write, waiting for one; nullptr when stopped and drained.
  std::shared_ptr<Group> Take();
  absl::Status Write(const Group& g);

  rocksdb::DB* const db_;
  const WriteFaultFn fault_;
  const std::optional<AdditiveCf> additive_;
  const ObserveFn observe_;

  Mutex mu_;
  CondVar work_cv_;  // the committer waits here for a batch (or for Stop)
  // Groups not yet taken, oldest first; only the last one admits new batches.
  std::deque<std::shared_ptr<Group>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool committer_waiting_ ABSL_GUARDED_BY(mu_) = false;

  Mutex join_mu_;  // serializes Stop()'s join
  std::thread thread_;

  std::atomic<uint64_t> groups_{0};
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> failed_groups_{0};
  std::atomic<uint64_t> largest_group_{0};
  std::atomic<uint64_t> queued_{0};
};

}  // namespace kv::storage
