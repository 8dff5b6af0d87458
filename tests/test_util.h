// Shared helpers for keyvend's concurrency and crash tests: hermetic temp dirs, a shop
// laid out as <tmp>/data + <tmp>/master.key (the key OUTSIDE the data dir), the offline
// invariant check, PollUntil (kit/poll.h), and readable descriptions of domain results.
#pragma once

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <latch>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "kit/files.h"
#include "kit/poll.h"
#include "shop/check.h"
#include "shop/records.h"
#include "shop/refusal.h"
#include "shop/shop.h"
#include "storage/data_dir.h"

namespace kv::testing {

// A shop's files in a temp dir: data dir <tmp>/data, master key <tmp>/master.key.
class ShopDir {
 public:
  const std::string& root() const { return tmp_.path(); }
  std::string data_dir() const { return tmp_.Sub("data"); }
  std::string key_file() const { return tmp_.Sub("master.key"); }

  // Options for a test-controlled shop: no background workers.
  ShopOptions Options() const {
    ShopOptions o;
    o.data_dir = data_dir();
    o.master_key_file = key_file();
    o.start_workers = false;
    o.block_cache_bytes = 8 << 20;
    return o;
  }

 private:
  TempDir tmp_;
};

// Opens `data_dir` offline (create_if_missing=false, as `keyvend check` does) and runs
// CheckShop. Errors: those of OpenDataDir and CheckShop.
inline absl::StatusOr<CheckReport> CheckDataDir(const std::string& data_dir,
                                                const std::string& key_file) {
  auto opened = storage::OpenExistingDataDir(data_dir, key_file);
  if (!opened.ok()) return opened.status();
  return CheckShop(*opened->db, *opened->cipher);
}

inline std::string FormatViolations(const CheckReport& r) {
  std::string out;
  for (const std::string& v : r.violations) {
    out += "  violation: ";
    out += v;
    out += "\n";
  }
  return out;
}

inline std::string FormatReport(const CheckReport& r) {
  std::string out = "products=" + std::to_string(r.products) +
                    " orders=" + std::to_string(r.orders) +
                    " payments=" + std::to_string(r.payments) +
                    " keys_in_pool=" + std::to_string(r.keys_in_pool) +
                    " keys_delivered=" + std::to_string(r.keys_delivered) +
                    " log_entries=" + std::to_string(r.log_entries) +
                    " violations=" + std::to_string(r.violations.size()) + "\n";
  return out + FormatViolations(r);
}

// "ok" / "refused <code>: <message>" / "failed <status>", for assertion messages.
template <typename T>
std::string Describe(const Result<T>& r) {
  if (r.ok()) return "ok";
  if (r.refused()) {
    return "refused " + std::string(RefusalCode(r.refusal())) + ": " + r.message();
  }
  return "failed " + r.status().ToString();
}

inline std::string Describe(OrderStatus s) { return std::string(OrderStatusName(s)); }

// Runs fn(i) for every i in [0, n) on `threads` threads that start together (a latch), each
// taking the next index from a shared counter. fn must be thread-safe.
template <typename F>
void ParallelFor(int threads, int n, F&& fn) {
  std::atomic<int> next{0};
  std::latch start(threads);
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(i);
    });
  }
  for (std::thread& th : pool) th.join();
}

}  // namespace kv::testing
