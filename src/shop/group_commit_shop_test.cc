// The group committer under the shop (issue 11): many threads create orders on one hot
// product while injected write errors fail whole groups. Every failed CreateOrder returns
// the error, and what it took in memory (stock, its pending-order slot) is given back:
// stock, holds and slots afterwards equal exactly what the successful orders account for,
// in memory, after a reopen (from disk) and in the offline check.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kit/shop_fixture.h"

namespace kv {
namespace {

constexpr int kThreads = 16;
constexpr int kAttemptsPerThread = 12;
constexpr uint32_t kPendingPerContact = 8;
constexpr int kStock = 1000;

class GroupCommitShopTest : public testing::ShopTest {
 protected:
  void SetUp() override { OpenWithHook(); }

  // The fixture's shop, with the fault hook: while `failing_`, every other group write
  // fails (the first one included) with an injected Unavailable.
  void OpenWithHook() {
    shop_.reset();
    ShopOptions o = Options();
    o.pending_orders_per_contact_max = kPendingPerContact;
    o.write_fault = [this]() -> absl::Status {
      if (!failing_.load()) return absl::OkStatus();
      if (groups_seen_.fetch_add(1) % 2 == 0) {
        failed_groups_.fetch_add(1);
        return absl::UnavailableError("injected write error");
      }
      return absl::OkStatus();
    };
    auto s = Shop::Open(o);
    ASSERT_TRUE(s.ok()) << s.status();
    shop_ = std::move(*s);
  }

  static std::string Contact(int t) { return absl::StrCat("buyer", t, "@example.com"); }

  uint64_t PendingOrders() {
    uint64_t n = 0;
    std::string cursor;
    do {
      auto page = shop_->ListOrders(OrderStatus::kPendingPayment, 100, cursor);
      EXPECT_TRUE(page.ok());
      if (!page.ok()) return 0;
      n += page->orders.size();
      cursor = page->next_cursor;
    } while (!cursor.empty());
    return n;
  }

  std::atomic<bool> failing_{false};
  std::atomic<uint64_t> groups_seen_{0};
  std::atomic<uint64_t> failed_groups_{0};
};

TEST_F(GroupCommitShopTest, FailedGroupsGiveBackStockHoldsAndSlots) {
  const uint64_t pid = MakeProduct(StockMode::kReserve, /*backorder=*/false, /*max=*/2);
  Import(pid, kStock);

  std::vector<int> held_by(kThreads, 0);    // keys held by each thread's orders
  std::vector<int> orders_by(kThreads, 0);  // its successful orders
  std::atomic<int> errors{0}, wrong_errors{0}, refusals{0};
  failing_ = true;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kAttemptsPerThread; ++i) {
        const int q = 1 + (i + t) % 2;
        auto r = shop_->CreateOrder(OrderRequest{pid, q, Contact(t), "", "10.0.0.1"});
        if (r.ok()) {
          held_by[t] += q;
          orders_by[t] += 1;
        } else if (r.refused()) {
          // Only the contact's slots running out may refuse (stock never does here).
          if (r.refusal() != Refusal::kPendingLimit) wrong_errors.fetch_add(1);
          refusals.fetch_add(1);
        } else {
          errors.fetch_add(1);
          if (!absl::IsUnavailable(r.status()) || r.status().message() != "injected write error") {
            wrong_errors.fetch_add(1);
          }
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  failing_ = false;

  int held = 0, orders = 0;
  for (int t = 0; t < kThreads; ++t) {
    held += held_by[t];
    orders += orders_by[t];
  }
  EXPECT_EQ(wrong_errors.load(), 0);
  // Each thread's attempts are in distinct groups, so there were at least 12 groups during
  // the run and every other one failed: both outcomes happened.
  EXPECT_GT(errors.load(), 0);
  EXPECT_GT(orders, 0);
  EXPECT_GT(failed_groups_.load(), 0u);
  EXPECT_EQ(errors.load() + orders + refusals.load(), kThreads * kAttemptsPerThread);

  // Memory: exactly the successful orders hold stock.
  StockCounts st = shop_->Stock(pid);
  EXPECT_EQ(st.pool, kStock);
  EXPECT_EQ(st.held, held);
  EXPECT_EQ(st.available, kStock - held);
  EXPECT_EQ(PendingOrders(), static_cast<uint64_t>(orders));

  // Pending slots: each contact has exactly kPendingPerContact - its orders left (a failed
  // order that kept its slot would make the contact hit the cap sooner).
  for (int t = 0; t < kThreads; ++t) {
    int more = 0;
    for (;;) {
      auto r = shop_->CreateOrder(OrderRequest{pid, 1, Contact(t), "", "10.0.0.1"});
      if (!r.ok()) {
        ASSERT_TRUE(r.refused());
        EXPECT_EQ(r.refusal(), Refusal::kPendingLimit);
        break;
      }
      ++more;
      ASSERT_LE(more, static_cast<int>(kPendingPerContact));
    }
    EXPECT_EQ(more, static_cast<int>(kPendingPerContact) - orders_by[t]) << Contact(t);
    held += more;
    orders += more;
  }
  st = shop_->Stock(pid);
  EXPECT_EQ(st.held, held);
  EXPECT_EQ(st.available, kStock - held);

  // Disk: a reopened shop rebuilds the same counts from the durable counters and finds
  // exactly the acknowledged orders; the offline check finds nothing half-applied.
  OpenWithHook();
  st = shop_->Stock(pid);
  EXPECT_EQ(st.pool, kStock);
  EXPECT_EQ(st.held, held);
  EXPECT_EQ(st.available, kStock - held);
  EXPECT_EQ(PendingOrders(), static_cast<uint64_t>(orders));
  EXPECT_TRUE(CloseAndCheck().empty());
}

}  // namespace
}  // namespace kv
