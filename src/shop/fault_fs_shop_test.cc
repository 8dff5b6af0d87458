// The real shop on the fault-injecting file system (kit/fault_fs.h; issue 15):
//  - a power cut after acknowledged orders and payments loses none of them, and nothing
//    unacknowledged is half there (the offline check passes, every order is whole);
//  - an injected EIO on the WAL's sync fails the request with its in-memory effects given
//    back, and requests after the fault succeed;
//  - injected read errors make `check` and Shop::Open (Recover) fail, never answer short.
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kit/fault_fs.h"
#include "kit/poll.h"
#include "kit/shop_fixture.h"

namespace kv {
namespace {

using testing::DropOptions;
using testing::FaultFs;
using testing::FaultRule;
using testing::FsError;
using testing::FsOp;

// A rule failing calls first .. first + count - 1 (count 0: for ever) of `op` on paths
// containing `path`, with `error`.
FaultRule Rule(FsOp op, uint64_t first, uint64_t count, std::string path,
               FsError error = FsError::kIo) {
  FaultRule r;
  r.op = op;
  r.first = first;
  r.count = count;
  r.error = error;
  r.path_contains = std::move(path);
  return r;
}

class FaultFsShopTest : public testing::ShopTest {
 protected:
  void SetUp() override {
    tweak_options_ = [this](ShopOptions& o) { o.env = env_.get(); };
    Reopen();
  }
  // The shop (a base-class member) closes before this class's file system goes.
  void TearDown() override { shop_.reset(); }

  // The power fails: the shop is abandoned (its close can write nothing), the disk keeps
  // what was synced, and the shop is opened again on what is left.
  void PowerCut(DropOptions o) {
    fs_->PowerOff();
    shop_.reset();
    auto r = fs_->DropUnsynced(o);
    ASSERT_TRUE(r.ok()) << r.status();
    Reopen();
  }

  // What an acknowledged order must look like after any crash.
  struct Acked {
    std::string token;
    OrderStatus status;
    std::vector<std::string> keys;
    std::string payment_id;  // empty: not paid
  };

  void ExpectAllThere(const std::map<std::string, Acked>& acked) {
    for (const auto& [id, a] : acked) {
      auto o = shop_->GetOrder(id, a.token);
      ASSERT_TRUE(o.ok()) << "acknowledged order " << id << " lost";
      EXPECT_EQ(o->status, a.status) << id;
      EXPECT_EQ(o->keys, a.keys) << id;
    }
    auto payments = shop_->ListPayments(std::nullopt);
    ASSERT_TRUE(payments.ok()) << payments.status();
    std::map<std::string, std::string> order_of;
    for (const PaymentView& p : *payments) order_of[p.record.payment_id] = p.record.order_id;
    for (const auto& [id, a] : acked) {
      if (!a.payment_id.empty()) {
        EXPECT_EQ(order_of[a.payment_id], id) << a.payment_id;
      }
    }
  }

  uint64_t OrderCount() {
    auto st = shop_->Stats();
    EXPECT_TRUE(st.ok());
    uint64_t n = 0;
    if (st.ok()) {
      for (const auto& [s, c] : st->orders_by_status) n += c;
    }
    return n;
  }

  std::shared_ptr<FaultFs> fs_ = std::make_shared<FaultFs>();
  std::unique_ptr<rocksdb::Env> env_ = FaultFs::NewEnv(fs_);
};

TEST_F(FaultFsShopTest, PowerCutKeepsEveryAcknowledgedOrderAndPaymentAndNothingHalf) {
  const uint64_t reserve = MakeProduct(StockMode::kReserve, /*backorder=*/false, /*max=*/3);
  const uint64_t on_pay = MakeProduct(StockMode::kOnPayment, /*backorder=*/true, /*max=*/3);
  Import(reserve, 60);
  Import(on_pay, 10);
  std::map<std::string, Acked> acked;
  int attempts = 0;
  for (uint64_t round = 0; round < 4; ++round) {
    for (int i = 0; i < 8; ++i) {
      const uint64_t pid = i % 2 == 0 ? reserve : on_pay;
      auto r = shop_->CreateOrder(OrderRequest{pid, 1 + i % 3, "buyer@example.com", ""});
      ASSERT_TRUE(r.ok()) << (r.refused() ? "refused" : r.status().ToString());
      acked[r->order_id] = Acked{r->token, r->status, {}, ""};
      if (i % 4 == 3) continue;  // stays pending
      const std::string pay_id = absl::StrCat("pay-", round, "-", i);
      auto p =
          shop_->ApplyPayment(PaymentNotice{r->order_id, pay_id, r->amount_cents, r->currency});
      ASSERT_TRUE(p.ok()) << (p.refused() ? "refused" : p.status().ToString());
      auto now = shop_->AdminGetOrder(r->order_id);
      ASSERT_TRUE(now.ok());
      acked[r->order_id] = Acked{r->token, now->status, now->keys, pay_id};
    }
    const uint64_t orders_before = OrderCount();
    // The last payment's WAL sync fails: not acknowledged. Its bytes are in the file but not
    // durable; the cut drops them, or (torn) keeps a prefix, or all of them.
    auto last = shop_->CreateOrder(OrderRequest{reserve, 2, "late@example.com", ""});
    ASSERT_TRUE(last.ok());
    acked[last->order_id] = Acked{last->token, last->status, {}, ""};
    fs_->AddRule(Rule(FsOp::kSync, 1, 1, ".log"));
    auto unacked = shop_->ApplyPayment(PaymentNotice{
        last->order_id, absl::StrCat("pay-unacked-", round), last->amount_cents, "USD"});
    ++attempts;
    EXPECT_FALSE(unacked.ok());
    EXPECT_FALSE(unacked.refused());
    fs_->ClearRules();
    // A request in flight when the power fails is not acknowledged either.
    fs_->PowerOff();
    auto in_flight = shop_->CreateOrder(OrderRequest{reserve, 1, "late@example.com", ""});
    EXPECT_FALSE(in_flight.ok());
    PowerCut(DropOptions{.tear = true, .seed = round});
    SCOPED_TRACE(absl::StrCat("round ", round));

    ExpectAllThere(acked);
    // The unacknowledged payment is whole or absent: the order is still pending (nothing of
    // the payment) or paid and delivered with its payment (all of it).
    auto late = shop_->AdminGetOrder(last->order_id);
    ASSERT_TRUE(late.ok());
    if (late->status == OrderStatus::kPendingPayment) {
      EXPECT_TRUE(late->keys.empty());
      EXPECT_TRUE(late->payment_id.empty());
    } else {
      EXPECT_EQ(late->status, OrderStatus::kDelivered);
      EXPECT_EQ(late->keys.size(), 2u);
      acked[last->order_id] = Acked{last->token, late->status, late->keys, ""};
    }
    // The order refused by the dead disk is nowhere: every order is an acknowledged one.
    EXPECT_EQ(OrderCount(), orders_before + 1);
    // Stock in memory (rebuilt from the durable counters) is what the orders account for.
    EXPECT_EQ(shop_->Stock(reserve).pool + shop_->Stock(reserve).delivered, 60);
    EXPECT_EQ(shop_->Stock(on_pay).pool + shop_->Stock(on_pay).delivered, 10);
    EXPECT_TRUE(CloseAndCheck().empty());
    Reopen();
  }
  EXPECT_EQ(attempts, 4);
}

// A failed WAL sync under an order and under a payment: each request fails as Unavailable
// and gives back what it took in memory (stock, holds, the order's state).
class FailedSyncTest : public FaultFsShopTest {
 protected:
  void SetUp() override {
    FaultFsShopTest::SetUp();
    pid_ = MakeProduct(StockMode::kReserve, /*backorder=*/false, /*max=*/3);
    Import(pid_, 10);
    first_ = Order(pid_, 2);
    before_ = shop_->Stock(pid_);
    orders_before_ = OrderCount();
  }

  void FailOneOrderAndOnePayment(FsError error) {
    fs_->AddRule(Rule(FsOp::kSync, 1, 1, ".log", error));
    auto failed = shop_->CreateOrder(OrderRequest{pid_, 3, "buyer@example.com", ""});
    ASSERT_FALSE(failed.ok());
    ASSERT_FALSE(failed.refused());
    EXPECT_TRUE(absl::IsUnavailable(failed.status())) << failed.status();
    EXPECT_EQ(fs_->injected(FsOp::kSync), 1u);
    ExpectUnchanged();
    fs_->ClearRules();
    // RocksDB refuses the writes after a failed one itself; whatever refuses this payment,
    // it fails and changes nothing.
    fs_->AddRule(Rule(FsOp::kSync, 1, 1, ".log", error));
    auto pay =
        shop_->ApplyPayment(PaymentNotice{first_.order_id, "pay-1", first_.amount_cents, "USD"});
    EXPECT_FALSE(pay.ok());
    EXPECT_FALSE(pay.refused());
    ExpectUnchanged();
    fs_->ClearRules();
  }

  void ExpectUnchanged() {
    const StockCounts now = shop_->Stock(pid_);
    EXPECT_EQ(now.available, before_.available);
    EXPECT_EQ(now.pool, before_.pool);
    EXPECT_EQ(now.held, before_.held);
    EXPECT_EQ(now.delivered, before_.delivered);
    EXPECT_EQ(OrderCount(), orders_before_);
    EXPECT_EQ(StatusOf(first_), OrderStatus::kPendingPayment);
  }

  // The fault is over: an order and the first order's payment go through. A restart and
  // a power cut then find either nothing of the failed order (its commit's bytes reached
  // the WAL file, only their sync failed) or, when `may_come_back`, all of it: an order
  // holding its 3 keys. Never a part; the offline check passes.
  void ExpectServingAndNothingHalf(bool may_come_back) {
    auto again = shop_->CreateOrder(OrderRequest{pid_, 3, "buyer@example.com", ""});
    ASSERT_TRUE(again.ok()) << (again.refused() ? "refused" : again.status().ToString());
    auto paid =
        shop_->ApplyPayment(PaymentNotice{first_.order_id, "pay-1", first_.amount_cents, "USD"});
    ASSERT_TRUE(paid.ok()) << (paid.refused() ? "refused" : paid.status().ToString());
    EXPECT_EQ(StatusOf(first_), OrderStatus::kDelivered);
    const uint64_t came_back = OrderCount() - (orders_before_ + 1);
    EXPECT_LE(came_back, may_come_back ? 1u : 0u);
    const int64_t held = 3 + 3 * static_cast<int64_t>(came_back);
    EXPECT_EQ(shop_->Stock(pid_).held, held);
    EXPECT_EQ(shop_->Stock(pid_).delivered, 2);
    Reopen();
    EXPECT_EQ(OrderCount(), orders_before_ + 1 + came_back);
    EXPECT_EQ(shop_->Stock(pid_).held, held);
    PowerCut(DropOptions{.tear = false, .seed = 0});
    EXPECT_EQ(OrderCount(), orders_before_ + 1 + came_back);
    EXPECT_EQ(StatusOf(first_), OrderStatus::kDelivered);
    EXPECT_EQ(shop_->Stock(pid_).held, held);
    EXPECT_EQ(shop_->Stock(pid_).delivered, 2);
    EXPECT_TRUE(CloseAndCheck().empty());
  }

  uint64_t pid_ = 0;
  OrderView first_;
  StockCounts before_;
  uint64_t orders_before_ = 0;
};

// EIO on fsync: RocksDB (7.8) takes it as a fatal background error (after a failed fsync
// the page cache cannot be trusted; DB::Resume refuses it), refuses every later write until
// the database is reopened, and the shop answers each of them Unavailable without changing
// anything. A restart is the recovery, and it replays what the failed commits left in the
// WAL file: a request answered with an error may come back whole (an order holding its
// keys until it expires; a payment, whose gateway retry is then a replay). Never half.
TEST_F(FailedSyncTest, AnEioOnTheWalSyncFailsTheRequestAndRefusesWritesUntilARestart) {
  FailOneOrderAndOnePayment(FsError::kIo);
  for (int i = 0; i < 3; ++i) {
    auto r = shop_->CreateOrder(OrderRequest{pid_, 1, "buyer@example.com", ""});
    EXPECT_FALSE(r.ok());
    if (!r.ok() && !r.refused()) {
      EXPECT_TRUE(absl::IsUnavailable(r.status())) << r.status();
    }
    ExpectUnchanged();
  }
  Reopen();
  ExpectServingAndNothingHalf(/*may_come_back=*/true);
}

// ENOSPC on fsync is retryable: RocksDB recovers by itself (its error handler flushes the
// memtables and moves to a new WAL in the background); until then writes fail and change
// nothing, then they succeed, and the failed commits never come back.
TEST_F(FailedSyncTest, AnEnospcOnTheWalSyncFailsTheRequestAndWritesResumeByThemselves) {
  FailOneOrderAndOnePayment(FsError::kNoSpace);
  int refused = 0;
  const bool resumed = testing::PollUntil(
      [&] {
        auto r = shop_->CreateOrder(OrderRequest{pid_, 3, "probe@example.com", ""});
        if (r.ok()) {
          EXPECT_TRUE(shop_->CancelOrder(r->order_id).ok());
          return true;
        }
        ++refused;
        ExpectUnchanged();
        return false;
      },
      std::chrono::seconds(60), std::chrono::milliseconds(50));
  ASSERT_TRUE(resumed) << "writes still refused after 60 s (" << refused << " tries)";
  orders_before_ += 1;  // the cancelled probe
  ExpectServingAndNothingHalf(/*may_come_back=*/false);
}

// A shop whose data is in SST files (a reopen flushes the recovered WAL), so reads go to
// the disk: orders of every kind, payments, a delivery.
class FaultFsReadTest : public FaultFsShopTest {
 protected:
  void Populate() {
    const uint64_t pid = MakeProduct(StockMode::kReserve, /*backorder=*/true, /*max=*/3);
    Import(pid, 20);
    for (int i = 0; i < 6; ++i) {
      const OrderView o = Order(pid, 1 + i % 3);
      if (i % 2 == 0) (void)Pay(o);
    }
    Reopen();  // WAL -> L0 files
    shop_.reset();
  }
  // Opens the data dir on the fault file system (no shop): what `keyvend check` opens.
  absl::StatusOr<storage::OpenedDataDir> OpenDir() {
    storage::DataDirOptions d;
    d.data_dir = tmp_.Sub("data");
    d.master_key_file = tmp_.Sub("master.key");
    d.create_if_missing = false;
    d.block_cache_bytes = 8 << 20;
    d.env = env_.get();
    return storage::OpenDataDir(d, &random_);
  }
};

TEST_F(FaultFsReadTest, AReadErrorMakesCheckFailNeverPass) {
  Populate();
  // Reads the check makes on a fresh open (an empty block cache).
  uint64_t reads = 0;
  {
    auto d = OpenDir();
    ASSERT_TRUE(d.ok()) << d.status();
    const uint64_t at_open = fs_->calls(FsOp::kRead);
    auto rep = CheckShop(*d->db, *d->cipher);
    ASSERT_TRUE(rep.ok()) << rep.status();
    EXPECT_TRUE(rep->violations.empty());
    reads = fs_->calls(FsOp::kRead) - at_open;
  }
  ASSERT_GT(reads, 0u) << "the check read nothing from the table files";
  int failed_runs = 0;
  for (uint64_t k = 1; k <= reads; ++k) {
    SCOPED_TRACE(absl::StrCat("table-file reads fail from the ", k, "th of the check on"));
    auto d = OpenDir();
    ASSERT_TRUE(d.ok()) << d.status();
    fs_->ResetCounters();
    fs_->AddRule(Rule(FsOp::kRead, k, 0, ".sst"));
    auto rep = CheckShop(*d->db, *d->cipher);
    fs_->ClearRules();
    if (fs_->injected(FsOp::kRead) == 0) continue;  // this run read less
    ++failed_runs;
    EXPECT_FALSE(rep.ok()) << "check passed over a failed read (" << rep->violations.size()
                           << " violations)";
    if (!rep.ok()) {
      EXPECT_TRUE(absl::IsUnavailable(rep.status())) << rep.status();
    }
  }
  EXPECT_GT(failed_runs, 0);
}

TEST_F(FaultFsReadTest, AReadErrorMakesOpenFailNeverRecoverShort) {
  Populate();
  fs_->ResetCounters();
  Reopen();
  const uint64_t reads = fs_->calls(FsOp::kRead);
  const StockCounts stock = shop_->Stock(1);
  shop_.reset();
  ASSERT_GT(reads, 0u);
  int failed_runs = 0;
  for (uint64_t k = 1; k <= reads; ++k) {
    SCOPED_TRACE(absl::StrCat("reads fail from the ", k, "th of the open on"));
    fs_->ResetCounters();
    fs_->AddRule(Rule(FsOp::kRead, k, 0, ""));
    auto s = Shop::Open(Options());
    fs_->ClearRules();
    if (fs_->injected(FsOp::kRead) == 0) continue;
    ++failed_runs;
    if (s.ok()) {
      // RocksDB may retry a read on its own; an open that succeeded must then be whole.
      const StockCounts got = (*s)->Stock(1);
      EXPECT_EQ(got.pool, stock.pool);
      EXPECT_EQ(got.held, stock.held);
      EXPECT_EQ(got.delivered, stock.delivered);
      ADD_FAILURE() << "Shop::Open succeeded over an injected read error";
    }
  }
  EXPECT_GT(failed_runs, 0);
  Reopen();  // and with the disk healthy again, it opens
  EXPECT_TRUE(CloseAndCheck().empty());
}

}  // namespace
}  // namespace kv
