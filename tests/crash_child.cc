// crash_child: a shop under load, for crash_test to kill -9 at random moments.
//
//   crash_child --data-dir D --master-key-file K --seed N [--threads T]
//               [--import-interval-ms M]
//
// Opens a Shop on D (real clock, workers on). Product 1 (reserve mode, backorders allowed,
// at most 3 keys per order) is created on the first run with 2,000 keys; every run then
// imports a batch of 20 new keys at start and a batch of 20..120 every M ms, so waiting
// backorders get served too. T threads loop forever: create an order (quantity 1..3), then
// usually pay it, sometimes cancel it instead, sometimes send an acknowledged payment's
// notice again (a replay), and sometimes refund a paid order as the merchant would (racing
// the imports that serve backorders). Buyers back off while the backorder queue is long,
// so stock keeps coming back and payments are delivered inline as well as from the queue.
//
// stdout is the record of what the shop ACKNOWLEDGED — each line is written with a single
// write(2) (atomic on a pipe, nothing left in a stdio buffer at kill -9) and only after the
// call it reports returned:
//   READY                        the shop is open and stocked
//   ORDER <order_id> <token>     CreateOrder returned the order
//   PAID <order_id> <payment_id> ApplyPayment returned OK for the order's payment
//   CANCELLED <order_id>         CancelOrder returned the cancelled order
//   REFUNDED <order_id>          RefundOrder returned the refunded order
//   ERROR <text>                 an outcome the shop must never give (crash_test fails)
// Exit codes: 2 usage, 3 the shop could not be opened or stocked. It never exits otherwise.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "shop/shop.h"

namespace kv {
namespace {

constexpr uint64_t kProductId = 1;
constexpr int kInitialKeys = 2000;
constexpr int kBatchKeys = 20;
// Buyers pause while more keys than this are owed to backorders.
constexpr int64_t kOwedMax = 300;

// One line, one write(2). A pipe write of at most PIPE_BUF bytes is atomic, so lines from
// different threads never interleave.
void Emit(std::string line) {
  for (char& c : line) {
    if (c == '\n') c = ' ';
  }
  line.push_back('\n');
  const ssize_t n = ::write(STDOUT_FILENO, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) _exit(4);  // the reader went away
}

template <typename T>
std::string Describe(const Result<T>& r) {
  if (r.ok()) return "ok";
  if (r.refused())
    return absl::StrCat("refused ", std::string(RefusalCode(r.refusal())), ": ", r.message());
  return absl::StrCat("failed ", r.status().ToString());
}

std::string StatusName(const std::optional<OrderStatus>& s) {
  return s ? std::string(OrderStatusName(*s)) : std::string("none");
}

// Imports `n` keys named by `prefix`; false (after an ERROR line) unless all were stored.
bool ImportKeys(Shop& shop, const std::string& prefix, int n) {
  std::string text;
  for (int i = 0; i < n; ++i) absl::StrAppend(&text, prefix, "-k", i, "\n");
  auto r = shop.ImportKeys(kProductId, text, ParseOptions{});
  if (!r.ok() || r->imported != static_cast<uint64_t>(n)) {
    Emit(absl::StrCat(
        "ERROR import ", prefix, ": ", Describe(r),
        r.ok() ? absl::StrCat(" imported=", r->imported, " duplicates=", r->duplicates) : ""));
    return false;
  }
  return true;
}

void Buyer(Shop* shop, uint64_t seed, int t) {
  std::mt19937_64 rng(seed * 1000003 + static_cast<uint64_t>(t));
  std::deque<std::pair<PaymentNotice, PaymentOutcome>> acknowledged;  // recent ones
  for (uint64_t n = 0;; ++n) {
    while (shop->Stock(kProductId).owed > kOwedMax) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // load generator backoff
    }
    OrderRequest req;
    req.product_id = kProductId;
    req.quantity = 1 + static_cast<int64_t>(rng() % 3);
    req.contact = absl::StrCat("c", seed, ".", t, ".", n % 64, "@example.com");
    auto order = shop->CreateOrder(req);
    if (!order.ok()) {
      // Backorders are allowed, so an order is never out of stock.
      Emit(absl::StrCat("ERROR CreateOrder: ", Describe(order)));
      continue;
    }
    Emit(absl::StrCat("ORDER ", order->order_id, " ", order->token));

    if (rng() % 20 == 0) {
      auto c = shop->CancelOrder(order->order_id);
      if (!c.ok() || c->status != OrderStatus::kCancelled) {
        Emit(absl::StrCat("ERROR CancelOrder ", order->order_id, ": ", Describe(c)));
      } else {
        Emit(absl::StrCat("CANCELLED ", order->order_id));
      }
      continue;
    }

    PaymentNotice notice;
    notice.order_id = order->order_id;
    notice.payment_id = absl::StrCat("pay-", seed, "-", t, "-", n);
    notice.amount_cents = order->amount_cents;
    notice.currency = order->currency;
    auto paid = shop->ApplyPayment(notice);
    if (!paid.ok()) {
      Emit(absl::StrCat("ERROR ApplyPayment ", notice.payment_id, ": ", Describe(paid)));
      continue;
    }
    Emit(absl::StrCat("PAID ", order->order_id, " ", notice.payment_id));
    const bool good_state = paid->order_status == OrderStatus::kDelivered ||
                            paid->order_status == OrderStatus::kBackordered;
    if (paid->outcome != PaymentOutcome::kApplied || paid->replay || !good_state) {
      Emit(absl::StrCat("ERROR ApplyPayment ", notice.payment_id,
                        " answered outcome=", static_cast<int>(paid->outcome),
                        " flag=", std::string(PaymentFlagName(paid->flag)),
                        " replay=", paid->replay, " status=", StatusName(paid->order_status)));
    }
    acknowledged.emplace_back(notice, paid->outcome);
    if (acknowledged.size() > 32) acknowledged.pop_front();

    // The merchant refunds a paid order (delivered, or waiting in the backorder queue).
    if (rng() % 40 == 0) {
      const size_t i = rng() % acknowledged.size();
      const std::string oid = acknowledged[i].first.order_id;
      auto r = shop->RefundOrder(oid);
      if (!r.ok() || r->status != OrderStatus::kRefunded) {
        Emit(absl::StrCat("ERROR RefundOrder ", oid, ": ", Describe(r)));
      } else {
        Emit(absl::StrCat("REFUNDED ", oid));
      }
      // Its notice stays a replay; but never refund the same order twice.
      acknowledged.erase(acknowledged.begin() + static_cast<ptrdiff_t>(i));
      continue;
    }

    // The gateway retries an acknowledged notice: it must be a replay that changes nothing.
    if (rng() % 8 == 0 && !acknowledged.empty()) {
      const auto& [again, outcome] = acknowledged[rng() % acknowledged.size()];
      auto r = shop->ApplyPayment(again);
      if (!r.ok() || !r->replay || r->outcome != outcome) {
        Emit(absl::StrCat(
            "ERROR duplicate notify ", again.payment_id, ": ", Describe(r),
            r.ok() ? absl::StrCat(" replay=", r->replay, " outcome=", static_cast<int>(r->outcome))
                   : ""));
      }
    }
  }
}

int Main(int argc, char** argv) {
  std::string data_dir, key_file;
  uint64_t seed = 0;
  bool have_seed = false;
  int threads = 8;
  int import_interval_ms = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--data-dir" && has_value) {
      data_dir = argv[++i];
    } else if (a == "--master-key-file" && has_value) {
      key_file = argv[++i];
    } else if (a == "--seed" && has_value) {
      seed = std::strtoull(argv[++i], nullptr, 10);
      have_seed = true;
    } else if (a == "--threads" && has_value) {
      threads = std::atoi(argv[++i]);
    } else if (a == "--import-interval-ms" && has_value) {
      import_interval_ms = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "crash_child: unknown or incomplete argument %s\n", a.c_str());
      return 2;
    }
  }
  if (data_dir.empty() || key_file.empty() || !have_seed || threads < 1 || import_interval_ms < 1) {
    std::fprintf(stderr,
                 "usage: crash_child --data-dir D --master-key-file K --seed N [--threads T] "
                 "[--import-interval-ms M]\n");
    return 2;
  }

  ShopOptions opts;
  opts.data_dir = data_dir;
  opts.master_key_file = key_file;
  opts.start_workers = true;
  auto opened = Shop::Open(opts);
  if (!opened.ok()) {
    std::fprintf(stderr, "crash_child: Shop::Open: %s\n", opened.status().ToString().c_str());
    Emit(absl::StrCat("ERROR Shop::Open: ", opened.status().ToString()));
    return 3;
  }
  std::unique_ptr<Shop> shop = std::move(*opened);

  if (!shop->GetProduct(kProductId).has_value()) {
    ProductSpec spec;
    spec.name = "Crash test top-up code";
    spec.price_cents = 999;
    spec.currency = "USD";
    spec.stock_mode = StockMode::kReserve;
    spec.allow_backorder = true;
    spec.max_per_order = 3;
    auto p = shop->CreateProduct(spec);
    if (!p.ok() || p->product.id != kProductId) {
      Emit(absl::StrCat("ERROR CreateProduct: ", Describe(p)));
      return 3;
    }
  }
  // The first run's stock (again after a crash that came before it was committed).
  if (shop->Stock(kProductId).imported == 0 && !ImportKeys(*shop, "init", kInitialKeys)) {
    return 3;
  }
  // Every run adds keys nobody has seen: the seed is unique per run.
  std::atomic<uint64_t> batch{0};
  if (!ImportKeys(*shop, absl::StrCat("s", seed, "-b", batch++), kBatchKeys)) return 3;
  Emit("READY");

  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(Buyer, shop.get(), seed, t);
  // Keys keep arriving while buyers wait: imports serve the backorder queue first.
  pool.emplace_back([&] {
    std::mt19937_64 rng(seed);
    while (true) {
      std::this_thread::sleep_for(std::chrono::milliseconds(import_interval_ms));
      const int n = kBatchKeys + static_cast<int>(rng() % 101);
      ImportKeys(*shop, absl::StrCat("s", seed, "-b", batch++), n);
    }
  });
  for (std::thread& th : pool) th.join();  // never: the process ends by kill -9
  return 0;
}

}  // namespace
}  // namespace kv

int main(int argc, char** argv) { return kv::Main(argc, argv); }
