// Benchmark: order creation on ONE hot product through the domain API (synced, so through
// the group committer, storage/group_commit.h), beside raw RocksDB baselines on a data dir
// opened with the very same options, in the same process, interleaved, at 1, 8 and 64
// threads. The raw baselines call rocksdb::DB::Write(sync=true) on each thread (RocksDB's
// own write group); "raw_order_shaped_committer" sends the same batch as
// "raw_order_shaped_sync" through Db::Write, i.e. the committer: the pair is the
// committer's cost or gain alone. The committer's runs report batches_per_group. The
// "_noyield" pair repeats both on a data dir opened with RocksDB's
// enable_write_thread_adaptive_yield=false (followers block instead of spinning).
//
//   order_bench [--benchmark_repetitions=N] [google-benchmark flags]
//   tools/bench-orders.sh     runs it and prints each figure and the domain/raw ratio
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/random.h"
#include "benchmark/benchmark.h"
#include "kit/files.h"
#include "shop/shop.h"
#include "storage/counter_merge.h"
#include "storage/data_dir.h"

namespace kv {
namespace {

// Orders per (benchmark, thread count, repetition); KV_BENCH_ORDERS overrides (profiling).
int g_orders_per_run = 12'000;
int g_stock = 400'000;  // never runs out across all runs

struct World {
  testing::TempDir tmp;
  std::unique_ptr<Shop> shop;
  uint64_t pid = 0;
  storage::OpenedDataDir raw;
  storage::OpenedDataDir raw_noyield;  // the same, enable_write_thread_adaptive_yield=false
  std::atomic<uint64_t> counter{0};
};
World* g_world = nullptr;

// The committer's groups and batches at a benchmark's start (thread 0 reads them before
// and after its loop; the other threads run the same span, give or take their start).
struct CommitSpan {
  explicit CommitSpan(const storage::Db* db, benchmark::State& state)
      : db_(db), state_(state), start_(db->commit_stats()) {}
  ~CommitSpan() {
    if (state_.thread_index() != 0) return;
    const storage::GroupCommitter::Stats end = db_->commit_stats();
    const double groups = static_cast<double>(end.groups - start_.groups);
    state_.counters["batches_per_group"] =
        groups > 0 ? static_cast<double>(end.batches - start_.batches) / groups : 0;
  }
  const storage::Db* db_;
  benchmark::State& state_;
  const storage::GroupCommitter::Stats start_;
};

// RocksDB's own synced write on the caller's thread (its write group), not Db::Write.
rocksdb::Status RawSyncWrite(storage::Db* db, rocksdb::WriteBatch* b) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return db->raw()->Write(wo, b);
}

void BM_RawWriteBatch(benchmark::State& state) {
  storage::Db* db = g_world->raw.db.get();
  const std::string value(110, 'v');  // about the size of an encoded order record
  const std::string counter_key = storage::CounterKey(1, storage::CounterKind::kHeld);
  const std::string one = storage::EncodeCounter(1);
  for (auto _ : state) {
    std::string key(16, '\0');
    SecureRandom::Get()->Fill(reinterpret_cast<uint8_t*>(key.data()), key.size());
    rocksdb::WriteBatch b;
    b.Put(db->cf(storage::kCfOrders), key, value);
    b.Merge(db->cf(storage::kCfCounters), counter_key, one);
    if (!RawSyncWrite(db, &b).ok()) state.SkipWithError("write failed");
  }
  state.SetItemsProcessed(state.iterations());
}

// The same records an order creation writes (order, expiry index, counter Merge), built
// without the domain: isolates RocksDB's cost of the batch's shape from the domain's own.
// through_committer: Db::Write (the group committer) instead of RocksDB's own write group.
// noyield: on the data dir opened with enable_write_thread_adaptive_yield=false.
void OrderShaped(benchmark::State& state, bool through_committer, bool noyield = false) {
  storage::Db* db = (noyield ? g_world->raw_noyield : g_world->raw).db.get();
  const std::string value(110, 'v');
  const std::string counter_key = storage::CounterKey(1, storage::CounterKind::kHeld);
  const std::string one = storage::EncodeCounter(1);
  std::optional<CommitSpan> span;
  if (through_committer) span.emplace(db, state);
  for (auto _ : state) {
    std::string key(16, '\0');
    SecureRandom::Get()->Fill(reinterpret_cast<uint8_t*>(key.data()), key.size());
    const uint64_t now_ms = static_cast<uint64_t>(absl::ToUnixMillis(absl::Now()));
    rocksdb::WriteBatch b;
    b.Put(db->cf(storage::kCfOrders), key, value);
    b.Put(db->cf(storage::kCfOrderIndex), storage::ExpiryIndexKey(now_ms + 900'000, key),
          rocksdb::Slice());
    b.Merge(db->cf(storage::kCfCounters), counter_key, one);
    const bool ok = through_committer ? db->Write(&b).ok() : RawSyncWrite(db, &b).ok();
    if (!ok) state.SkipWithError("write failed");
  }
  state.SetItemsProcessed(state.iterations());
}
void BM_RawOrderShaped(benchmark::State& state) { OrderShaped(state, false); }
void BM_RawOrderShapedCommitter(benchmark::State& state) { OrderShaped(state, true); }
void BM_RawOrderShapedNoYield(benchmark::State& state) { OrderShaped(state, false, true); }
void BM_RawOrderShapedCommitterNoYield(benchmark::State& state) { OrderShaped(state, true, true); }

void BM_CreateOrder(benchmark::State& state) {
  Shop* shop = g_world->shop.get();
  CommitSpan span(shop->db(), state);
  for (auto _ : state) {
    const uint64_t n = g_world->counter.fetch_add(1);
    auto r =
        shop->CreateOrder(OrderRequest{g_world->pid, 1, absl::StrCat("b", n % 5000, "@x.y"), ""});
    if (!r.ok()) state.SkipWithError("order refused or failed");
  }
  state.SetItemsProcessed(state.iterations());
}

}  // namespace
}  // namespace kv

int main(int argc, char** argv) {
  using namespace kv;
  if (const char* e = std::getenv("KV_BENCH_ORDERS")) {
    g_orders_per_run = std::max(1000, std::atoi(e));
    g_stock = std::max(g_stock, g_orders_per_run * 12);
  }
  World world;
  g_world = &world;
  ShopOptions o;
  o.data_dir = world.tmp.Sub("shop");
  o.master_key_file = world.tmp.Sub("shop.key");
  o.start_workers = false;
  o.hold_seconds = 3600;
  auto shop = Shop::Open(o);
  if (!shop.ok()) {
    std::fprintf(stderr, "open: %s\n", std::string(shop.status().message()).c_str());
    return 1;
  }
  world.shop = std::move(*shop);
  ProductSpec p;
  p.name = "hot product";
  p.price_cents = 1000;
  p.currency = "USD";
  p.max_per_order = 1;
  world.pid = world.shop->CreateProduct(p)->product.id;
  std::string keys;
  keys.reserve(g_stock * 24);
  for (int i = 0; i < g_stock; ++i) absl::StrAppend(&keys, "BENCH-", i, "-KEY\n");
  auto imp = world.shop->ImportKeys(world.pid, keys, ParseOptions{});
  if (!imp.ok() || imp->imported != static_cast<uint64_t>(g_stock)) {
    std::fprintf(stderr, "import failed\n");
    return 1;
  }
  // Let the import's flushes and compactions finish so they do not run during the timed
  // part (the raw baseline's data dir has no such backlog).
  {
    rocksdb::DB* db = world.shop->db()->raw();
    rocksdb::FlushOptions fo;
    fo.wait = true;
    for (int c = 0; c < storage::kCfCount; ++c) {
      (void)db->Flush(fo, world.shop->db()->cf(static_cast<storage::Cf>(c)));
    }
    for (int i = 0; i < 600; ++i) {
      uint64_t running = 0, pending = 0;
      db->GetIntProperty(rocksdb::DB::Properties::kNumRunningCompactions, &running);
      db->GetIntProperty(rocksdb::DB::Properties::kCompactionPending, &pending);
      if (running == 0 && pending == 0) break;
      usleep(100'000);
    }
  }
  storage::DataDirOptions ro;
  ro.data_dir = world.tmp.Sub("raw");
  ro.master_key_file = world.tmp.Sub("raw.key");
  auto raw = storage::OpenDataDir(ro, SecureRandom::Get());
  if (!raw.ok()) return 1;
  world.raw = std::move(*raw);
  ro.data_dir = world.tmp.Sub("raw_noyield");
  ro.master_key_file = world.tmp.Sub("raw_noyield.key");
  ro.write_thread_adaptive_yield = false;
  auto raw_noyield = storage::OpenDataDir(ro, SecureRandom::Get());
  if (!raw_noyield.ok()) return 1;
  world.raw_noyield = std::move(*raw_noyield);

  for (int threads : {1, 8, 64}) {
    const int iters = g_orders_per_run / threads;
    benchmark::RegisterBenchmark("raw_writebatch_sync", BM_RawWriteBatch)
        ->Threads(threads)
        ->Iterations(iters)
        ->UseRealTime();
    benchmark::RegisterBenchmark("raw_order_shaped_sync", BM_RawOrderShaped)
        ->Threads(threads)
        ->Iterations(iters)
        ->UseRealTime();
    benchmark::RegisterBenchmark("raw_order_shaped_committer", BM_RawOrderShapedCommitter)
        ->Threads(threads)
        ->Iterations(iters)
        ->UseRealTime();
    benchmark::RegisterBenchmark("raw_order_shaped_sync_noyield", BM_RawOrderShapedNoYield)
        ->Threads(threads)
        ->Iterations(iters)
        ->UseRealTime();
    benchmark::RegisterBenchmark("raw_order_shaped_committer_noyield",
                                 BM_RawOrderShapedCommitterNoYield)
        ->Threads(threads)
        ->Iterations(iters)
        ->UseRealTime();
    benchmark::RegisterBenchmark("domain_create_order", BM_CreateOrder)
        ->Threads(threads)
        ->Iterations(iters)
        ->UseRealTime();
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  world.shop.reset();
  world.raw.db.reset();
  world.raw_noyield.db.reset();
  return 0;
}
