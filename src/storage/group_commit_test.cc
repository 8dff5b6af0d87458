// The group committer (storage/group_commit.h) over a real Db: merged groups, concurrent
// commits, a failing group's status reaching every member with nothing written, and
// shutdown with callers waiting. A fault hook that blocks holds the committer inside a
// group, so the next group's membership is known without any timing assumption.
#include "storage/group_commit.h"

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/mutex.h"
#include "base/random.h"
#include "gtest/gtest.h"
#include "kit/files.h"
#include "kit/poll.h"
#include "storage/counter_merge.h"
#include "storage/data_dir.h"
#include "storage/db.h"

namespace kv::storage {
namespace {

using std::chrono::seconds;

// A fault hook the test steers: while closed it holds the committer inside the group it
// is about to write (counting the groups it entered); each group let through takes the
// next outcome of the script (OK once the script is empty).
class Gate {
 public:
  WriteFaultFn Hook() {
    return [this] {
      MutexLock l(&mu_);
      ++entered_;
      while (closed_) cv_.Wait(&mu_);
      if (script_.empty()) return absl::OkStatus();
      absl::Status s = script_.front();
      script_.pop_front();
      return s;
    };
  }
  void Close() {
    MutexLock l(&mu_);
    closed_ = true;
  }
  void Open(std::deque<absl::Status> script = {}) {
    {
      MutexLock l(&mu_);
      closed_ = false;
      script_ = std::move(script);
    }
    cv_.SignalAll();
  }
  int entered() {
    MutexLock l(&mu_);
    return entered_;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int entered_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<absl::Status> script_ ABSL_GUARDED_BY(mu_);
};

class GroupCommitTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  void Open() {
    db_.reset();
    DataDirOptions o;
    o.data_dir = tmp_.Sub("data");
    o.master_key_file = tmp_.Sub("master.key");
    o.block_cache_bytes = 8 << 20;
    o.write_fault = gate_.Hook();
    auto d = OpenDataDir(o, SecureRandom::Get());
    ASSERT_TRUE(d.ok()) << d.status();
    db_ = std::move(d->db);
  }

  static std::string Key(int t, int i) { return absl::StrCat("k", t, "-", i); }

  void PutBatch(rocksdb::WriteBatch* b, const std::string& key) { PutBatch(db_.get(), b, key); }
  static void PutBatch(Db* db, rocksdb::WriteBatch* b, const std::string& key) {
    b->Put(db->cf(kCfOrders), key, absl::StrCat("v:", key));
    b->Merge(db->cf(kCfCounters), CounterKey(1, CounterKind::kHeld), EncodeCounter(1));
  }

  bool Visible(const std::string& key) {
    auto v = db_->Get(kCfOrders, key);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() && v->has_value() && **v == absl::StrCat("v:", key);
  }

  int64_t Held() {
    auto v = db_->Get(kCfCounters, CounterKey(1, CounterKind::kHeld));
    EXPECT_TRUE(v.ok());
    if (!v.ok() || !v->has_value()) return 0;
    int64_t n = 0;
    EXPECT_TRUE(DecodeCounter(**v, &n));
    return n;
  }

  // Holds the committer inside a group of its own (one batch, key "hold"), returning the
  // thread waiting for it; the next `Commit`s queue for the group after it.
  std::thread HoldCommitter(absl::Status* out) {
    gate_.Close();
    const int before = gate_.entered();
    std::thread t([this, out] {
      rocksdb::WriteBatch b;
      PutBatch(&b, "hold");
      *out = db_->Write(&b);
    });
    EXPECT_TRUE(testing::PollUntil([&] { return gate_.entered() > before; }, seconds(60)));
    return t;
  }

  // Starts `n` threads, each committing one batch (key Key(tag, i)), and waits until all
  // of them are queued behind the held committer.
  std::vector<std::thread> QueueWriters(int tag, int n, std::vector<absl::Status>* out) {
    out->assign(n, absl::InternalError("not run"));
    const uint64_t queued_before = db_->commit_stats().queued;
    std::vector<std::thread> ts;
    // The writers use the Db through a pointer taken here, never through db_: a test may
    // reset db_ (close the Db) while they are queued inside Write.
    Db* db = db_.get();
    for (int i = 0; i < n; ++i) {
      ts.emplace_back([db, tag, i, out] {
        rocksdb::WriteBatch b;
        PutBatch(db, &b, Key(tag, i));
        (*out)[i] = db->Write(&b);
      });
    }
    EXPECT_TRUE(testing::PollUntil([&] { return db_->commit_stats().queued == queued_before + n; },
                                   seconds(60)));
    return ts;
  }

  testing::TempDir tmp_;
  Gate gate_;  // outlives db_ (declared before it)
  std::unique_ptr<Db> db_;
};

TEST_F(GroupCommitTest, MergedBatchHoldsEveryRecordInOrder) {
  rocksdb::WriteBatch a, b, c;
  a.Put(db_->cf(kCfOrders), "x", "1");
  a.Merge(db_->cf(kCfCounters), CounterKey(1, CounterKind::kHeld), EncodeCounter(5));
  b.Put(db_->cf(kCfOrders), "x", "2");  // a later batch's Put wins, as in separate writes
  b.Put(db_->cf(kCfOrders), "y", "3");
  c.Delete(db_->cf(kCfOrders), "y");
  c.Merge(db_->cf(kCfCounters), CounterKey(1, CounterKind::kHeld), EncodeCounter(-2));
  rocksdb::WriteBatch m = MergeBatches({&a, &b, &c});
  EXPECT_EQ(m.Count(), a.Count() + b.Count() + c.Count());
  EXPECT_EQ(m.GetDataSize(), a.GetDataSize() + b.GetDataSize() + c.GetDataSize() - 24);
  EXPECT_TRUE(m.HasPut() && m.HasMerge() && m.HasDelete());
  ASSERT_TRUE(db_->Write(&m).ok());
  auto x = db_->Get(kCfOrders, "x");
  ASSERT_TRUE(x.ok() && x->has_value());
  EXPECT_EQ(**x, "2");
  auto y = db_->Get(kCfOrders, "y");
  ASSERT_TRUE(y.ok());
  EXPECT_FALSE(y->has_value());
  EXPECT_EQ(Held(), 3);
}

AdditiveCf CountersAdditive(Db& db) {
  AdditiveCf a;
  for (int c = 0; c < kCfCount; ++c) {
    rocksdb::ColumnFamilyHandle* h = db.cf(static_cast<Cf>(c));
    if (h->GetID() >= a.handles.size()) a.handles.resize(h->GetID() + 1);
    a.handles[h->GetID()] = h;
  }
  a.id = db.cf(kCfCounters)->GetID();
  return a;
}

// Counts a batch's records per kind, to see what the summing kept and what it folded.
struct Tally final : rocksdb::WriteBatch::Handler {
  int puts = 0, deletes = 0, merges = 0;
  rocksdb::Status PutCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
    ++puts;
    return rocksdb::Status::OK();
  }
  rocksdb::Status DeleteCF(uint32_t, const rocksdb::Slice&) override {
    ++deletes;
    return rocksdb::Status::OK();
  }
  rocksdb::Status MergeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
    ++merges;
    return rocksdb::Status::OK();
  }
};
Tally Count(const rocksdb::WriteBatch& b) {
  Tally t;
  EXPECT_TRUE(b.Iterate(&t).ok());
  return t;
}

TEST_F(GroupCommitTest, SummingFoldsTheCounterMergesOfAGroupIntoOnePerKey) {
  rocksdb::WriteBatch a, b, c;
  a.Put(db_->cf(kCfOrders), "x", "1");
  a.Merge(db_->cf(kCfCounters), CounterKey(1, CounterKind::kHeld), EncodeCounter(5));
  a.Merge(db_->cf(kCfCounters), OrderCountKey(1), EncodeCounter(1));
  b.Put(db_->cf(kCfOrders), "x", "2");
  b.Put(db_->cf(kCfOrders), "y", "3");
  b.Merge(db_->cf(kCfCounters), CounterKey(1, CounterKind::kHeld), EncodeCounter(7));
  c.Delete(db_->cf(kCfOrders), "y");
  c.Merge(db_->cf(kCfCounters), CounterKey(1, CounterKind::kHeld), EncodeCounter(-2));
  c.Merge(db_->cf(kCfCounters), OrderCountKey(1), EncodeCounter(1));
  rocksdb::WriteBatch m = MergeBatchesSummingAdds({&a, &b, &c}, CountersAdditive(*db_));
  const Tally t = Count(m);
  EXPECT_EQ(t.puts, 3);
  EXPECT_EQ(t.deletes, 1);
  EXPECT_EQ(t.merges, 2);  // one per counter key instead of five
  ASSERT_TRUE(db_->Write(&m).ok());
  auto x = db_->Get(kCfOrders, "x");
  ASSERT_TRUE(x.ok() && x->has_value());
  EXPECT_EQ(**x, "2");
  auto y = db_->Get(kCfOrders, "y");
  ASSERT_TRUE(y.ok());
  EXPECT_FALSE(y->has_value());
  EXPECT_EQ(Held(), 10);
  auto orders = db_->Get(kCfCounters, OrderCountKey(1));
  ASSERT_TRUE(orders.ok() && orders->has_value());
  int64_t n = 0;
  ASSERT_TRUE(DecodeCounter(**orders, &n));
  EXPECT_EQ(n, 2);
}

TEST_F(GroupCommitTest, SummingFallsBackToRecordForRecordWhenItCannotSum) {
  const AdditiveCf add = CountersAdditive(*db_);
  const auto merged_all = [&](rocksdb::WriteBatch& odd) {
    rocksdb::WriteBatch a;
    a.Merge(db_->cf(kCfCounters), CounterKey(1, CounterKind::kHeld), EncodeCounter(1));
    rocksdb::WriteBatch m = MergeBatchesSummingAdds({&a, &odd}, add);
    return m.Count() == a.Count() + odd.Count() &&
           m.GetDataSize() == a.GetDataSize() + odd.GetDataSize() - 12;
  };
  rocksdb::WriteBatch put;  // a Put into the counters: the order of records matters then
  put.Put(db_->cf(kCfCounters), CounterKey(1, CounterKind::kHeld), EncodeCounter(9));
  put.Merge(db_->cf(kCfCounters), CounterKey(1, CounterKind::kHeld), EncodeCounter(1));
  EXPECT_TRUE(merged_all(put));
  rocksdb::WriteBatch del;
  del.Delete(db_->cf(kCfCounters), CounterKey(1, CounterKind::kHeld));
  EXPECT_TRUE(merged_all(del));
  rocksdb::WriteBatch bad;  // an operand that is not 8 bytes
  bad.Merge(db_->cf(kCfCounters), CounterKey(1, CounterKind::kHeld), "123");
  EXPECT_TRUE(merged_all(bad));
  rocksdb::WriteBatch over;  // a sum that would overflow
  over.Merge(db_->cf(kCfCounters), CounterKey(1, CounterKind::kHeld), EncodeCounter(INT64_MAX));
  EXPECT_TRUE(merged_all(over));
  rocksdb::WriteBatch log;  // a record kind it does not rebuild
  log.PutLogData("note");
  log.Merge(db_->cf(kCfCounters), CounterKey(1, CounterKind::kHeld), EncodeCounter(1));
  EXPECT_TRUE(merged_all(log));
  rocksdb::WriteBatch fine;  // and the control: this one is summed
  fine.Merge(db_->cf(kCfCounters), CounterKey(1, CounterKind::kHeld), EncodeCounter(1));
  EXPECT_FALSE(merged_all(fine));
}

TEST_F(GroupCommitTest, ConcurrentCommitsAreAllVisibleAfterReopen) {
  constexpr int kThreads = 16, kPerThread = 100;
  const GroupCommitter::Stats before = db_->commit_stats();
  std::atomic<int> failed{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        rocksdb::WriteBatch b;
        PutBatch(&b, Key(t, i));
        if (!db_->Write(&b).ok()) failed.fetch_add(1);
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(failed.load(), 0);
  const GroupCommitter::Stats after = db_->commit_stats();
  EXPECT_EQ(after.batches - before.batches, uint64_t{kThreads * kPerThread});
  EXPECT_LE(after.groups - before.groups, uint64_t{kThreads * kPerThread});
  EXPECT_EQ(after.failed_groups, 0u);
  EXPECT_EQ(after.queued, 0u);
  Open();  // every acknowledged write is on disk
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) ASSERT_TRUE(Visible(Key(t, i))) << Key(t, i);
  }
  EXPECT_EQ(Held(), kThreads * kPerThread);
}

TEST_F(GroupCommitTest, BatchesQueuedDuringAWriteShareTheNextOne) {
  absl::Status held;
  std::thread holder = HoldCommitter(&held);
  std::vector<absl::Status> st;
  std::vector<std::thread> ws = QueueWriters(1, 40, &st);
  const GroupCommitter::Stats before = db_->commit_stats();
  gate_.Open();
  holder.join();
  for (auto& t : ws) t.join();
  EXPECT_TRUE(held.ok()) << held;
  for (const absl::Status& s : st) EXPECT_TRUE(s.ok()) << s;
  const GroupCommitter::Stats after = db_->commit_stats();
  // The held group (1 batch), then ONE group with all 40.
  EXPECT_EQ(after.groups - before.groups, 2u);
  EXPECT_EQ(after.batches - before.batches, 41u);
  EXPECT_EQ(after.largest_group, 40u);
  for (int i = 0; i < 40; ++i) EXPECT_TRUE(Visible(Key(1, i)));
  EXPECT_EQ(Held(), 41);
}

TEST_F(GroupCommitTest, AGroupIsBoundedInBatches) {
  absl::Status held;
  std::thread holder = HoldCommitter(&held);
  constexpr int kN = static_cast<int>(kGroupBatchesMax) + 10;
  std::vector<absl::Status> st;
  std::vector<std::thread> ws = QueueWriters(2, kN, &st);
  gate_.Open();
  holder.join();
  for (auto& t : ws) t.join();
  for (const absl::Status& s : st) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(db_->commit_stats().largest_group, kGroupBatchesMax);
  EXPECT_EQ(Held(), kN + 1);
}

TEST_F(GroupCommitTest, AGroupIsBoundedInBytes) {
  absl::Status held;
  std::thread holder = HoldCommitter(&held);
  // Three batches of 40% of the bound each: two fit a group, the third starts the next.
  std::vector<absl::Status> st(3);
  std::vector<std::thread> ws;
  const std::string big(kGroupBytesMax * 2 / 5, 'b');
  for (int i = 0; i < 3; ++i) {
    ws.emplace_back([&, i] {
      rocksdb::WriteBatch b;
      b.Put(db_->cf(kCfOrders), Key(3, i), big);
      st[i] = db_->Write(&b);
    });
  }
  ASSERT_TRUE(testing::PollUntil([&] { return db_->commit_stats().queued == 3; }, seconds(60)));
  const GroupCommitter::Stats before = db_->commit_stats();
  gate_.Open();
  holder.join();
  for (auto& t : ws) t.join();
  for (const absl::Status& s : st) EXPECT_TRUE(s.ok()) << s;
  const GroupCommitter::Stats after = db_->commit_stats();
  EXPECT_EQ(after.groups - before.groups, 3u);  // the held one, then 2 + 1
  EXPECT_EQ(after.largest_group, 2u);
}

TEST_F(GroupCommitTest, AsyncMembersShareTheGroupAndAreCalledBackWithItsStatus) {
  absl::Status held;
  std::thread holder = HoldCommitter(&held);
  // 10 batches handed over without waiting, behind the held group: one group, failed.
  Mutex mu;
  std::vector<absl::Status> got;
  const auto queue = [&](int tag) {
    for (int i = 0; i < 10; ++i) {
      auto b = std::make_unique<rocksdb::WriteBatch>();
      PutBatch(b.get(), Key(tag, i));
      db_->WriteAsync(std::move(b), [&mu, &got](const absl::Status& s) {
        MutexLock l(&mu);
        got.push_back(s);
      });
    }
  };
  // The 10 callbacks' statuses, once all have come.
  const auto take = [&] {
    std::vector<absl::Status> out;
    EXPECT_TRUE(testing::PollUntil(
        [&] {
          MutexLock l(&mu);
          return got.size() == 10;
        },
        seconds(60)));
    MutexLock l(&mu);
    out.swap(got);
    return out;
  };
  queue(7);
  const absl::Status injected = absl::UnavailableError("injected: async group");
  gate_.Open({absl::OkStatus(), injected});
  holder.join();
  const std::vector<absl::Status> failed = take();
  ASSERT_EQ(failed.size(), 10u);
  for (const absl::Status& s : failed) EXPECT_EQ(s, injected);
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(Visible(Key(7, i))) << Key(7, i);
  // And a group that succeeds calls back OK with everything visible.
  queue(8);
  const std::vector<absl::Status> written = take();
  ASSERT_EQ(written.size(), 10u);
  for (const absl::Status& s : written) EXPECT_TRUE(s.ok()) << s;
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(Visible(Key(8, i))) << Key(8, i);
}

TEST_F(GroupCommitTest, AFailedGroupFailsEveryMemberAndWritesNothing) {
  absl::Status held;
  std::thread holder = HoldCommitter(&held);
  std::vector<absl::Status> st;
  std::vector<std::thread> ws = QueueWriters(4, 30, &st);
  const GroupCommitter::Stats before = db_->commit_stats();
  const absl::Status injected = absl::UnavailableError("injected: the disk is on fire");
  // The held group is written; the next one, all 30, fails.
  gate_.Open({absl::OkStatus(), injected});
  holder.join();
  for (auto& t : ws) t.join();
  EXPECT_TRUE(held.ok()) << held;
  for (const absl::Status& s : st) EXPECT_EQ(s, injected);  // same code, same message
  const GroupCommitter::Stats after = db_->commit_stats();
  EXPECT_EQ(after.groups - before.groups, 2u);
  EXPECT_EQ(after.failed_groups - before.failed_groups, 1u);
  for (int i = 0; i < 30; ++i) EXPECT_FALSE(Visible(Key(4, i))) << Key(4, i);
  EXPECT_EQ(Held(), 1);

  // Later commits succeed again.
  for (int i = 0; i < 5; ++i) {
    rocksdb::WriteBatch b;
    PutBatch(&b, Key(5, i));
    ASSERT_TRUE(db_->Write(&b).ok());
  }
  Open();
  for (int i = 0; i < 30; ++i) EXPECT_FALSE(Visible(Key(4, i))) << Key(4, i);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(Visible(Key(5, i))) << Key(5, i);
  EXPECT_EQ(Held(), 6);
}

TEST_F(GroupCommitTest, UnsyncedWritesDoNotGoThroughTheCommitter) {
  const GroupCommitter::Stats before = db_->commit_stats();
  rocksdb::WriteBatch b;
  PutBatch(&b, "unsynced");
  ASSERT_TRUE(db_->Write(&b, /*sync=*/false).ok());
  EXPECT_TRUE(Visible("unsynced"));
  EXPECT_EQ(db_->commit_stats().batches, before.batches);
}

TEST_F(GroupCommitTest, ClosingTheDbWithCallersWaitingWritesThemAndReturns) {
  absl::Status held;
  std::thread holder = HoldCommitter(&held);
  std::vector<absl::Status> st;
  std::vector<std::thread> ws = QueueWriters(6, 20, &st);
  // Every writer is queued (inside Db::Write): the Db may go now. Its destructor drains
  // the queue, which the gate holds until it is opened.
  std::thread closer([this] { db_.reset(); });
  gate_.Open();
  closer.join();
  holder.join();
  for (auto& t : ws) t.join();
  EXPECT_TRUE(held.ok()) << held;
  for (const absl::Status& s : st) EXPECT_TRUE(s.ok()) << s;
  Open();
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(Visible(Key(6, i))) << Key(6, i);
  EXPECT_EQ(Held(), 21);
}

TEST_F(GroupCommitTest, ACommitAfterStopIsRefusedAtOnce) {
  GroupCommitter c(db_->raw(), nullptr);
  rocksdb::WriteBatch b;
  PutBatch(&b, "before");
  ASSERT_TRUE(c.Commit(&b).ok());
  c.Stop();
  c.Stop();  // idempotent
  rocksdb::WriteBatch late;
  PutBatch(&late, "after");
  const absl::Status s = c.Commit(&late);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_TRUE(Visible("before"));
  EXPECT_FALSE(Visible("after"));
  EXPECT_EQ(c.stats().batches, 1u);
}

}  // namespace
}  // namespace kv::storage
