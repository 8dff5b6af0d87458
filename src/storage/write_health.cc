#include "storage/write_health.h"

#include <utility>

#include "absl/time/clock.h"
#include "base/log.h"

namespace kv::storage {
namespace {

const char* ReasonName(rocksdb::BackgroundErrorReason r) {
  switch (r) {
    case rocksdb::BackgroundErrorReason::kFlush:
      return "flush";
    case rocksdb::BackgroundErrorReason::kCompaction:
      return "compaction";
    case rocksdb::BackgroundErrorReason::kWriteCallback:
      return "write";
    case rocksdb::BackgroundErrorReason::kMemTable:
      return "memtable";
    case rocksdb::BackgroundErrorReason::kManifestWrite:
      return "manifest write";
    case rocksdb::BackgroundErrorReason::kFlushNoWAL:
      return "flush";
    case rocksdb::BackgroundErrorReason::kManifestWriteNoWAL:
      return "manifest write";
  }
  return "background work";
}

// RocksDB calls these on its own threads; they only record.
class Listener final : public rocksdb::EventListener {
 public:
  explicit Listener(WriteHealth* health) : health_(health) {}
  const char* Name() const override { return "keyvend.WriteHealth"; }
  void OnBackgroundError(rocksdb::BackgroundErrorReason reason, rocksdb::Status* error) override {
    if (error == nullptr || error->ok()) return;
    // A soft error (a compaction that found the disk full) does not stop writes.
    if (error->severity() < rocksdb::Status::Severity::kHardError) return;
    health_->RecordBackgroundError(std::string(ReasonName(reason)) + ": " + error->ToString());
  }
  void OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) override {
    health_->RecordRecovered(info.new_bg_error.ok(), info.new_bg_error.ToString());
  }

 private:
  WriteHealth* health_;
};

}  // namespace

WriteHealth::WriteHealth() : listener_(std::make_shared<Listener>(this)) {}

void WriteHealth::RecordWrite(const absl::Status& s) {
  if (s.ok()) {
    if (!writable_.load(std::memory_order_acquire)) Heal("a synced write succeeded");
    return;
  }
  // Only the storage's own failures: a closing database is not a sick one.
  if (s.code() == absl::StatusCode::kUnavailable || s.code() == absl::StatusCode::kDataLoss ||
      s.code() == absl::StatusCode::kInternal || s.code() == absl::StatusCode::kResourceExhausted) {
    if (s.message().find("closing") != absl::string_view::npos) return;
    Fail(std::string(s.message()));
  }
}

void WriteHealth::RecordBackgroundError(const std::string& what) { Fail(what); }

void WriteHealth::RecordRecovered(bool ok, const std::string& what) {
  if (ok) {
    Heal("RocksDB recovered from the background error");
  } else {
    KV_LOG(kWarn, "storage: RocksDB's recovery ended without success: ", what);
  }
}

void WriteHealth::Fail(const std::string& what) {
  MutexLock l(&mu_);
  ++state_.errors_total;
  if (!state_.writable) {
    state_.error = what;  // the latest reason
    return;
  }
  state_.writable = false;
  state_.error = what;
  state_.since_unix_ms = absl::ToUnixMillis(absl::Now());
  writable_.store(false, std::memory_order_release);
  KV_LOG(kError,
         "storage: writes fail (answered 503 storage_unavailable until it recovers): ", what);
}

void WriteHealth::Heal(const char* how) {
  MutexLock l(&mu_);
  if (state_.writable) return;
  const int64_t down_ms = absl::ToUnixMillis(absl::Now()) - state_.since_unix_ms;
  state_.writable = true;
  state_.error.clear();
  state_.since_unix_ms = 0;
  ++state_.recoveries_total;
  writable_.store(true, std::memory_order_release);
  KV_LOG(kWarn, "storage: writable again after ", down_ms, " ms (", how, ")");
}

WriteHealth::State WriteHealth::state() const {
  MutexLock l(&mu_);
  return state_;
}

}  // namespace kv::storage
