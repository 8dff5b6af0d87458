// Benchmark: order creation on ONE hot product through the domain API (synced), beside a
// raw RocksDB WriteBatch{Put, Merge} sync=true baseline on a data dir opened with the very
// same options, in the same process, interleaved, at 1, 8 and 64 threads.
//
//   order_bench [--benchmark_repetitions=N] [google-benchmark flags]
//   tools/bench-orders.sh     runs it and prints each figure and the domain/raw ratio
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
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
  std::atomic<uint64_t> counter{0};
};
World* g_world = nullptr;

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
    if (!db->Write(&b, /*sync=*/true).ok()) state.SkipWithError("write failed");
  }
  state.SetItemsProcessed(state.iterations());
}

// The same records an order creation writes (order, expiry index, counter Merge), built
// without the domain: isolates RocksDB's cost of the batch's shape from the domain's own.
void BM_RawOrderShaped(benchmark::State& state) {
  storage::Db* db = g_world->raw.db.get();
  const std::string value(110, 'v');
  const std::string counter_key = storage::CounterKey(1, storage::CounterKind::kHeld);
  const std::string one = storage::EncodeCounter(1);
  for (auto _ : state) {
    std::string key(16, '\0');
    SecureRandom::Get()->Fill(reinterpret_cast<uint8_t*>(key.data()), key.size());
    const uint64_t now_ms = static_cast<uint64_t>(absl::ToUnixMillis(absl::Now()));
    rocksdb::WriteBatch b;
    b.Put(db->cf(storage::kCfOrders), key, value);
    b.Put(db->cf(storage::kCfOrderIndex), storage::ExpiryIndexKey(now_ms + 900'000, key),
          rocksdb::Slice());
    b.Merge(db->cf(storage::kCfCounters), counter_key, one);
    if (!db->Write(&b, /*sync=*/true).ok()) state.SkipWithError("write failed");
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_CreateOrder(benchmark::State& state) {
  Shop* shop = g_world->shop.get();
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
  return 0;
}
