#include "storage/group_commit.h"

#include <pthread.h>

#include <algorithm>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "storage/counter_merge.h"
#include "storage/rocks_status.h"

namespace kv::storage {
namespace {

// WriteBatch's representation (db/write_batch.cc): fixed64 sequence, fixed32 count, then
// the records. Public through WriteBatch::Data() and WriteBatch(std::string&&); it is also
// the WAL record's format, so it does not change under a running database.
constexpr size_t kBatchHeaderBytes = 12;
constexpr size_t kBatchCountOffset = 8;

void PutFixed32LE(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

}  // namespace

rocksdb::WriteBatch MergeBatches(const std::vector<rocksdb::WriteBatch*>& batches) {
  size_t bytes = kBatchHeaderBytes;
  for (const rocksdb::WriteBatch* b : batches) bytes += b->GetDataSize() - kBatchHeaderBytes;
  std::string rep;
  rep.reserve(bytes);
  rep.append(kBatchHeaderBytes, '\0');
  uint32_t count = 0;
  for (const rocksdb::WriteBatch* b : batches) {
    const std::string& d = b->Data();
    rep.append(d, kBatchHeaderBytes, std::string::npos);
    count += b->Count();
  }
  PutFixed32LE(rep.data() + kBatchCountOffset, count);
  return rocksdb::WriteBatch(std::move(rep));
}

namespace {

// Rebuilds a group's records into one batch, summing the merges into the additive column
// family. Any record it cannot take as it is returns an error, and the caller falls back.
class SumAdds final : public rocksdb::WriteBatch::Handler {
 public:
  SumAdds(const AdditiveCf& additive, rocksdb::WriteBatch* out) : add_(additive), out_(out) {}

  rocksdb::Status PutCF(uint32_t cf, const rocksdb::Slice& k, const rocksdb::Slice& v) override {
    rocksdb::ColumnFamilyHandle* h = Other(cf);
    return h == nullptr ? Refuse() : out_->Put(h, k, v);
  }
  rocksdb::Status DeleteCF(uint32_t cf, const rocksdb::Slice& k) override {
    rocksdb::ColumnFamilyHandle* h = Other(cf);
    return h == nullptr ? Refuse() : out_->Delete(h, k);
  }
  rocksdb::Status SingleDeleteCF(uint32_t cf, const rocksdb::Slice& k) override {
    rocksdb::ColumnFamilyHandle* h = Other(cf);
    return h == nullptr ? Refuse() : out_->SingleDelete(h, k);
  }
  rocksdb::Status DeleteRangeCF(uint32_t cf, const rocksdb::Slice& b,
                                const rocksdb::Slice& e) override {
    rocksdb::ColumnFamilyHandle* h = Other(cf);
    return h == nullptr ? Refuse() : out_->DeleteRange(h, b, e);
  }
  rocksdb::Status MergeCF(uint32_t cf, const rocksdb::Slice& k, const rocksdb::Slice& v) override {
    if (cf != add_.id) {
      rocksdb::ColumnFamilyHandle* h = Other(cf);
      return h == nullptr ? Refuse() : out_->Merge(h, k, v);
    }
    int64_t operand = 0;
    if (!DecodeCounter(v, &operand)) return Refuse();
    int64_t& sum = sums_[k.ToString()];
    if (__builtin_add_overflow(sum, operand, &sum)) return Refuse();
    return rocksdb::Status::OK();
  }
  // A blob, 2PC marker or wide column: Handler's defaults refuse them. LogData cannot
  // refuse (it returns nothing) and is not rebuilt: it ends the summing.
  void LogData(const rocksdb::Slice& /*blob*/) override { refused_ = true; }
  bool Continue() override { return !refused_; }
  bool refused() const { return refused_; }

  // Appends the sums (by key, so the batch does not depend on hash order).
  rocksdb::Status Finish() {
    std::vector<std::pair<std::string, int64_t>> sorted(sums_.begin(), sums_.end());
    std::sort(sorted.begin(), sorted.end());
    rocksdb::ColumnFamilyHandle* h = add_.handles[add_.id];
    for (const auto& [key, sum] : sorted) {
      rocksdb::Status s = out_->Merge(h, key, EncodeCounter(sum));
      if (!s.ok()) return s;
    }
    return rocksdb::Status::OK();
  }

 private:
  // The handle of a column family other than the additive one; nullptr for the additive
  // one (anything but a merge there ends the summing) and for an unknown id.
  rocksdb::ColumnFamilyHandle* Other(uint32_t cf) const {
    if (cf == add_.id || cf >= add_.handles.size()) return nullptr;
    return add_.handles[cf];
  }
  static rocksdb::Status Refuse() { return rocksdb::Status::NotSupported("not summed"); }

  const AdditiveCf& add_;
  rocksdb::WriteBatch* out_;
  absl::flat_hash_map<std::string, int64_t> sums_;
  bool refused_ = false;
};

}  // namespace

rocksdb::WriteBatch MergeBatchesSummingAdds(const std::vector<rocksdb::WriteBatch*>& batches,
                                            const AdditiveCf& additive) {
  if (additive.id < additive.handles.size() && additive.handles[additive.id] != nullptr) {
    size_t bytes = 0;
    for (const rocksdb::WriteBatch* b : batches) bytes += b->GetDataSize();
    rocksdb::WriteBatch out(bytes);
    SumAdds sum(additive, &out);
    bool ok = true;
    for (const rocksdb::WriteBatch* b : batches) {
      if (!b->Iterate(&sum).ok() || sum.refused()) {
        ok = false;
        break;
      }
    }
    if (ok && sum.Finish().ok()) return out;
  }
  return MergeBatches(batches);
}

GroupCommitter::GroupCommitter(rocksdb::DB* db, WriteFaultFn fault,
                               std::optional<AdditiveCf> additive, ObserveFn observe)
    : db_(db),
      fault_(std::move(fault)),
      additive_(std::move(additive)),
      observe_(std::move(observe)) {
  thread_ = std::thread([this] { Run(); });
}

GroupCommitter::~GroupCommitter() { Stop(); }

absl::Status GroupCommitter::Commit(rocksdb::WriteBatch* batch) {
  std::shared_ptr<Group> g;
  {
    MutexLock l(&mu_);
    if (stopping_) {
      return absl::UnavailableError("write: the database is closing (group commit stopped)");
    }
    g = Enqueue(batch);
  }
  MutexLock l(&g->mu);
  while (!g->done) g->done_cv.Wait(&g->mu);
  // Each member gets a Status of its own: copies would share one reference-counted rep
  // across the group's threads, whose count lives in Debian's abseil (not built for TSan).
  return g->status.ok() ? absl::OkStatus() : absl::Status(g->status.code(), g->status.message());
}

std::shared_ptr<GroupCommitter::Group> GroupCommitter::Enqueue(rocksdb::WriteBatch* batch) {
  const size_t bytes = batch->GetDataSize();
  // A group always admits its first batch, however large.
  if (queue_.empty() || queue_.back()->batches.size() >= kGroupBatchesMax ||
      queue_.back()->bytes + bytes > kGroupBytesMax) {
    queue_.push_back(std::make_shared<Group>());
  }
  std::shared_ptr<Group> g = queue_.back();
  g->batches.push_back(batch);
  g->bytes += bytes;
  queued_.fetch_add(1, std::memory_order_relaxed);
  // Only a committer asleep needs the signal; a busy one takes the queue when it is done.
  if (committer_waiting_) work_cv_.Signal();
  return g;
}

void GroupCommitter::CommitAsync(std::unique_ptr<rocksdb::WriteBatch> batch, DoneFn done) {
  {
    MutexLock l(&mu_);
    if (!stopping_) {
      std::shared_ptr<Group> g = Enqueue(batch.get());
      g->owned.push_back(std::move(batch));
      g->callbacks.push_back(std::move(done));
      return;
    }
  }
  done(absl::UnavailableError("write: the database is closing (group commit stopped)"));
}

void GroupCommitter::Stop() {
  {
    MutexLock l(&mu_);
    stopping_ = true;
    work_cv_.Signal();
  }
  MutexLock j(&join_mu_);
  if (thread_.joinable()) thread_.join();
}

GroupCommitter::Stats GroupCommitter::stats() const {
  Stats s;
  s.groups = groups_.load(std::memory_order_relaxed);
  s.batches = batches_.load(std::memory_order_relaxed);
  s.failed_groups = failed_groups_.load(std::memory_order_relaxed);
  s.largest_group = largest_group_.load(std::memory_order_relaxed);
  s.queued = queued_.load(std::memory_order_relaxed);
  return s;
}

std::shared_ptr<GroupCommitter::Group> GroupCommitter::Take() {
  MutexLock l(&mu_);
  while (queue_.empty() && !stopping_) {
    committer_waiting_ = true;
    work_cv_.Wait(&mu_);
    committer_waiting_ = false;
  }
  // Stopping: the queue is drained before the thread ends, so no caller is left waiting.
  if (queue_.empty()) return nullptr;
  std::shared_ptr<Group> g = std::move(queue_.front());
  queue_.pop_front();
  queued_.fetch_sub(g->batches.size(), std::memory_order_relaxed);
  return g;
}

void GroupCommitter::Run() {
  pthread_setname_np(pthread_self(), "kv-commit");  // named in top, perf and gdb
  while (std::shared_ptr<Group> g = Take()) {
    // Taken off the queue: no caller adds to g->batches any more.
    const absl::Status s = Write(*g);
    const uint64_t n = g->batches.size();
    groups_.fetch_add(1, std::memory_order_relaxed);
    batches_.fetch_add(n, std::memory_order_relaxed);
    if (!s.ok()) failed_groups_.fetch_add(1, std::memory_order_relaxed);
    if (n > largest_group_.load(std::memory_order_relaxed)) {
      largest_group_.store(n, std::memory_order_relaxed);  // only this thread writes it
    }
    if (observe_) observe_(s);
    {
      MutexLock l(&g->mu);
      g->done = true;
      g->status = s;
    }
    g->done_cv.SignalAll();
    for (const DoneFn& done : g->callbacks) {
      done(s.ok() ? absl::OkStatus() : absl::Status(s.code(), s.message()));  // as Commit
    }
  }
}

absl::Status GroupCommitter::Write(const Group& g) {
  if (fault_) {
    absl::Status f = fault_();
    if (!f.ok()) return f;
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (g.batches.size() == 1) return FromRocks(db_->Write(wo, g.batches.front()), "write");
  rocksdb::WriteBatch merged =
      additive_ ? MergeBatchesSummingAdds(g.batches, *additive_) : MergeBatches(g.batches);
  return FromRocks(db_->Write(wo, &merged), "write");
}

}  // namespace kv::storage
