#include "shop/stock_txn.h"

#include <deque>
#include <memory>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "shop/shop_internal.h"

namespace kv {
namespace {

std::unique_ptr<Shop::ProductState> NewProduct() {
  ProductRecord rec;
  rec.id = 7;
  return std::make_unique<Shop::ProductState>(rec);
}

// A product with n keys imported and committed.
std::unique_ptr<Shop::ProductState> Stocked(int64_t n) {
  auto ps = NewProduct();
  StockTxn t(ps.get());
  t.Import(n);
  t.Commit();
  return ps;
}

// An order's hold, written and committed (the state most moves start from).
void HoldCommitted(Shop::ProductState* ps, int64_t q) {
  StockTxn t(ps);
  ASSERT_TRUE(t.Hold(q));
  t.Commit();
}

struct Counts {
  int64_t available, pool, held, owed, delivered, imported, retired;
  bool operator==(const Counts&) const = default;
};
Counts Of(const Shop::ProductState& ps) {
  return {ps.available.load(), ps.pool.load(),     ps.held.load(),   ps.owed.load(),
          ps.delivered.load(), ps.imported.load(), ps.retired.load()};
}

TEST(StockTxn, ImportRaisesAvailableOnlyAtCommit) {
  auto ps = NewProduct();
  StockTxn t(ps.get());
  t.Import(5);
  EXPECT_EQ(Of(*ps), (Counts{0, 0, 0, 0, 0, 0, 0}));  // a release: not before the commit
  t.Commit();
  EXPECT_EQ(Of(*ps), (Counts{5, 5, 0, 0, 0, 5, 0}));
}

TEST(StockTxn, HoldTakesUnitsAtOnceAndCountsHeldAtCommit) {
  auto ps = Stocked(10);
  StockTxn t(ps.get());
  ASSERT_TRUE(t.Hold(4));
  EXPECT_EQ(ps->available.load(), 6);  // an acquisition: before the write
  EXPECT_EQ(ps->held.load(), 0);
  t.Commit();
  EXPECT_EQ(Of(*ps), (Counts{6, 10, 4, 0, 0, 10, 0}));
}

TEST(StockTxn, HoldAndTakeBeyondAvailableAreRefusedAndChangeNothing) {
  auto ps = Stocked(3);
  {
    StockTxn t(ps.get());
    EXPECT_FALSE(t.Hold(4));
    EXPECT_FALSE(t.Take(4));
    EXPECT_TRUE(t.empty());
    EXPECT_EQ(ps->available.load(), 3);
    t.Commit();
  }
  EXPECT_EQ(Of(*ps), (Counts{3, 3, 0, 0, 0, 3, 0}));
  StockTxn t(ps.get());
  EXPECT_TRUE(t.Hold(3));  // exactly what is left
  EXPECT_FALSE(t.Hold(1));
}

TEST(StockTxn, AnUncommittedTxnGivesBackEveryUnitItTook) {
  auto ps = Stocked(10);
  const Counts before = Of(*ps);
  {
    StockTxn t(ps.get());
    ASSERT_TRUE(t.Hold(2));
    ASSERT_TRUE(t.Take(3));
    t.Owe(4);
    t.Retire(1);
    t.ReleaseHold(2);  // a release is only recorded: nothing to give back
    EXPECT_EQ(ps->available.load(), 0);
  }  // the write failed: no Commit
  EXPECT_EQ(Of(*ps), before);
}

TEST(StockTxn, AMovedTxnKeepsItsUnitsUntilItsNewOwnerEnds) {
  auto ps = Stocked(5);
  auto moved = [&] {
    StockTxn t(ps.get());
    EXPECT_TRUE(t.Hold(2));
    return std::make_shared<StockTxn>(std::move(t));
  }();
  EXPECT_EQ(ps->available.load(), 3);  // the moved-from txn gave nothing back
  moved.reset();
  EXPECT_EQ(ps->available.load(), 5);
}

TEST(StockTxn, ReleaseHoldRaisesAvailableAfterTheCommit) {
  auto ps = Stocked(10);
  HoldCommitted(ps.get(), 4);
  StockTxn t(ps.get());
  t.ReleaseHold(4);
  EXPECT_EQ(ps->available.load(), 6);
  t.Commit();
  EXPECT_EQ(Of(*ps), (Counts{10, 10, 0, 0, 0, 10, 0}));
}

TEST(StockTxn, DeliveriesMoveKeysAndLeaveAvailable) {
  auto ps = Stocked(10);
  HoldCommitted(ps.get(), 3);
  {
    StockTxn t(ps.get());
    t.DeliverFromHold(3);
    t.Commit();
  }
  EXPECT_EQ(Of(*ps), (Counts{7, 7, 0, 0, 3, 10, 0}));
  StockTxn t(ps.get());
  ASSERT_TRUE(t.Take(2));
  EXPECT_EQ(ps->available.load(), 5);
  t.DeliverTaken(2);
  t.Commit();
  EXPECT_EQ(Of(*ps), (Counts{5, 5, 0, 0, 5, 10, 0}));
}

TEST(StockTxn, UntakeGivesUnitsBackAtOnce) {
  auto ps = Stocked(4);
  StockTxn t(ps.get());
  ASSERT_TRUE(t.Take(3));
  t.Untake(3);  // too few keys found: the payment falls back
  EXPECT_EQ(ps->available.load(), 4);
  t.Owe(3);
  EXPECT_EQ(ps->available.load(), 1);
  t.Commit();
  EXPECT_EQ(Of(*ps), (Counts{1, 4, 0, 3, 0, 4, 0}));
}

TEST(StockTxn, OweMayTakeAvailableBelowZeroAndReleaseOwedGivesItBack) {
  auto ps = Stocked(1);
  {
    StockTxn t(ps.get());
    t.Owe(3);
    t.Commit();
  }
  EXPECT_EQ(Of(*ps), (Counts{-2, 1, 0, 3, 0, 1, 0}));
  StockTxn t(ps.get());
  t.ReleaseOwed(3);  // the backorder is refunded
  t.Commit();
  EXPECT_EQ(Of(*ps), (Counts{1, 1, 0, 0, 0, 1, 0}));
}

TEST(StockTxn, ServeOwedKeepsEveryHoldCovered) {
  // 4 keys: 3 held by an open order, 2 owed to a backorder.
  auto ps = Stocked(4);
  {
    StockTxn t(ps.get());
    ASSERT_TRUE(t.Hold(3));
    t.Owe(2);
    t.Commit();
  }
  ASSERT_EQ(ps->available.load(), -1);
  {
    StockTxn t(ps.get());
    EXPECT_FALSE(t.CanServeOwed(2));  // 4 - 2 < 3 held
    EXPECT_FALSE(t.ServeOwed(2));
    EXPECT_TRUE(t.empty());
  }
  // An import of 1 in the same batch makes it possible: 5 - 2 >= 3.
  StockTxn t(ps.get());
  t.Import(1);
  ASSERT_TRUE(t.CanServeOwed(2));
  ASSERT_TRUE(t.ServeOwed(2));
  t.Commit();
  EXPECT_EQ(Of(*ps), (Counts{0, 3, 3, 0, 2, 5, 0}));
}

TEST(StockTxn, RetireMayLeaveHoldsUncovered) {
  auto ps = Stocked(5);
  HoldCommitted(ps.get(), 4);
  StockTxn t(ps.get());
  t.Retire(3);
  EXPECT_EQ(ps->available.load(), -2);  // an acquisition: before the write
  t.Commit();
  EXPECT_EQ(Of(*ps), (Counts{-2, 2, 4, 0, 0, 5, 3}));
}

TEST(StockTxn, LoadAndResetAvailableRebuildMemoryFromTheCounters) {
  auto ps = NewProduct();
  StockTxn::LoadCounter(ps.get(), storage::CounterKind::kPool, 9);
  StockTxn::LoadCounter(ps.get(), storage::CounterKind::kHeld, 2);
  StockTxn::LoadCounter(ps.get(), storage::CounterKind::kOwed, 3);
  StockTxn::LoadCounter(ps.get(), storage::CounterKind::kDelivered, 4);
  StockTxn::LoadCounter(ps.get(), storage::CounterKind::kImported, 14);
  StockTxn::LoadCounter(ps.get(), storage::CounterKind::kRetired, 1);
  StockTxn::ResetAvailable(ps.get());
  EXPECT_EQ(Of(*ps), (Counts{4, 9, 2, 3, 4, 14, 1}));
}

// One step of the property test: what one of the shop's paths does in one transaction,
// against a model of the orders (h: the open holds, bo: the backorders, FIFO).
void RandomStep(std::mt19937& rng, Shop::ProductState* ps, StockTxn& t, std::vector<int64_t>& h,
                std::deque<int64_t>& bo) {
  auto pick = [&](int64_t n) { return static_cast<int64_t>(rng() % static_cast<uint64_t>(n)); };
  auto serve = [&] {
    while (!bo.empty() && t.CanServeOwed(bo.front())) {
      ASSERT_TRUE(t.ServeOwed(bo.front()));
      bo.pop_front();
    }
  };
  const int64_t q = 1 + pick(4);
  switch (pick(8)) {
    case 0:  // an import, serving backorders first
      t.Import(1 + pick(6));
      serve();
      break;
    case 1:  // a reserve order (refused when short)
      if (t.Hold(q)) h.push_back(q);
      break;
    case 2:  // a held order is paid
      if (!h.empty()) {
        const auto i = static_cast<ptrdiff_t>(pick(static_cast<int64_t>(h.size())));
        const int64_t hq = h[static_cast<size_t>(i)];
        h.erase(h.begin() + i);
        if (ps->pool.load() >= hq) {  // the keys are there (one thread: the mirror is exact)
          t.DeliverFromHold(hq);
        } else {  // a retire took them: backorder or refund_due
          t.ReleaseHold(hq);
          if (pick(2) == 0) {
            t.Owe(hq);
            bo.push_back(hq);
          }
        }
      }
      break;
    case 3:  // an on_payment order is paid
      if (t.Take(q)) {
        ASSERT_GE(ps->pool.load(), q);
        t.DeliverTaken(q);
      } else if (pick(2) == 0) {
        t.Owe(q);
        bo.push_back(q);
      }
      break;
    case 4:  // expiry or cancel
      if (!h.empty()) {
        t.ReleaseHold(h.back());
        h.pop_back();
      }
      break;
    case 5:  // a backorder is refunded
      if (!bo.empty()) {
        const auto i = static_cast<ptrdiff_t>(pick(static_cast<int64_t>(bo.size())));
        t.ReleaseOwed(bo[static_cast<size_t>(i)]);
        bo.erase(bo.begin() + i);
      }
      break;
    case 6:  // a retire of some unsold keys
      if (pick(4) == 0 && ps->pool.load() > 0) t.Retire(1 + pick(ps->pool.load()));
      break;
    default:  // the worker
      serve();
      break;
  }
}

// Random sequences of steps, each committed or (a failed write, one in five) dropped. After
// every step: I5 (available = pool - held - owed), I1 (held + delivered <= imported),
// imported = pool + delivered + retired, no counter below zero, and held/owed equal the
// model's open holds and backorders.
TEST(StockTxn, InvariantsHoldAfterRandomSequences) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    std::mt19937 rng(seed);
    auto ps = NewProduct();
    std::vector<int64_t> holds;
    std::deque<int64_t> backorders;
    int64_t committed = 0, delivered_steps = 0;
    for (int step = 0; step < 3000; ++step) {
      SCOPED_TRACE(absl::StrCat("step ", step));
      {
        std::vector<int64_t> h = holds;
        std::deque<int64_t> bo = backorders;
        StockTxn t(ps.get());
        RandomStep(rng, ps.get(), t, h, bo);
        if (::testing::Test::HasFatalFailure()) return;
        if (rng() % 5 != 0) {
          t.Commit();
          holds = std::move(h);
          backorders = std::move(bo);
          ++committed;
        }
      }  // an uncommitted t gives back what it took
      const Counts c = Of(*ps);
      ASSERT_EQ(c.available, c.pool - c.held - c.owed);
      ASSERT_LE(c.held + c.delivered, c.imported);
      ASSERT_EQ(c.imported, c.pool + c.delivered + c.retired);
      ASSERT_GE(c.pool, 0);
      ASSERT_GE(c.delivered, 0);
      int64_t held = 0, owed = 0;
      for (int64_t x : holds) held += x;
      for (int64_t x : backorders) owed += x;
      ASSERT_EQ(c.held, held);
      ASSERT_EQ(c.owed, owed);
      if (c.delivered > 0) ++delivered_steps;
    }
    // The sequence did something: commits, and deliveries.
    EXPECT_GT(committed, 2000);
    EXPECT_GT(delivered_steps, 0);
  }
}

}  // namespace
}  // namespace kv
