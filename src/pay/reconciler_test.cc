// The reconciler on a real Shop with a FakeClock and a fake gateway: when it queries (after,
// backoff, window), what it applies (once: a notify and a query of one payment are one), what
// it drops, that attempts survive a reopen, and check-payment.
#include "pay/reconciler.h"

#include <map>

#include "base/time_format.h"
#include "gtest/gtest.h"
#include "kit/shop_fixture.h"

namespace kv::pay {
namespace {

// Answers queries from a map the test fills; counts them.
class FakeGateway final : public Gateway {
 public:
  std::string_view name() const override { return "fake"; }
  std::vector<std::string> methods() const override { return {}; }
  bool SupportsCurrency(std::string_view) const override { return true; }
  absl::StatusOr<PayStart> Start(const PayOrder&) override { return PayStart{}; }
  NotifyVerdict ParseNotify(const httplib::Request&, absl::Time) const override { return {}; }
  NotifyReply Reply(bool) const override { return {}; }
  QueryResult Query(std::string_view order_id, std::string_view ref) override {
    ++queries;
    last_ref = std::string(ref);
    QueryResult q;
    if (unreachable) {
      q.error = "connection refused";
      return q;
    }
    auto it = paid.find(std::string(order_id));
    if (it == paid.end()) {
      q.state = QueryState::kNotPaid;
      return q;
    }
    q.state = QueryState::kPaid;
    q.notice = it->second;
    return q;
  }
  std::map<std::string, PaymentNotice> paid;
  bool unreachable = false;
  int queries = 0;
  std::string last_ref;
};

class ReconcilerTest : public testing::ShopTest {
 protected:
  void SetUp() override {
    ShopTest::SetUp();
    auto g = std::make_unique<FakeGateway>();
    fake_ = g.get();
    gateways_.Add(std::move(g));
    NewReconciler();
  }
  void NewReconciler() {
    rec_.reset();
    ReconcilerOptions o;
    o.after = absl::Seconds(60);
    o.window = absl::Hours(2);
    o.backoff_max = absl::Seconds(600);
    rec_ = std::make_unique<Reconciler>(shop_.get(), &gateways_, &clock_, o, &metrics_);
    ASSERT_TRUE(rec_->Load().ok());
  }
  PayAttempt Attempt(const OrderView& o) {
    PayAttempt a;
    a.order_id = o.order_id;
    a.gateway = "fake";
    a.ref = "ref-" + o.order_id.substr(0, 6);
    a.started_ms = UnixMs(clock_.WallNow());
    return a;
  }
  OrderStatus StatusOf(const OrderView& o) { return shop_->AdminGetOrder(o.order_id)->status; }
  double Metric(const std::string& line) {
    const std::string text = metrics_.Render();
    const size_t at = text.find(line + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + line.size() + 1));
  }

  Gateways gateways_;
  FakeGateway* fake_ = nullptr;
  Registry metrics_;
  std::unique_ptr<Reconciler> rec_;
};

TEST_F(ReconcilerTest, LostNotifyIsAppliedAfterTheDelayOnce) {
  const uint64_t pid = MakeProduct();
  Import(pid, 3);
  const OrderView o = Order(pid);
  ASSERT_TRUE(rec_->Track(Attempt(o)).ok());
  fake_->paid[o.order_id] = PaymentNotice{o.order_id, "fake:T1", o.amount_cents, o.currency};

  clock_.Advance(absl::Seconds(59));
  EXPECT_EQ(rec_->RunOnce(), 0u) << "not before reconcile_after";
  EXPECT_EQ(StatusOf(o), OrderStatus::kPendingPayment);

  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(rec_->RunOnce(), 1u);
  EXPECT_EQ(fake_->last_ref, "ref-" + o.order_id.substr(0, 6)) << "the stored ref is asked";
  EXPECT_EQ(StatusOf(o), OrderStatus::kDelivered);
  EXPECT_EQ(Metric("keyvend_gateway_reconciled_total{gateway=\"fake\"}"), 1);
  EXPECT_EQ(Metric("keyvend_gateway_queries_total{gateway=\"fake\",state=\"paid\"}"), 1);

  // The notify arriving late is a replay: nothing changes, one payment.
  auto replay = shop_->ApplyPayment(fake_->paid[o.order_id]);
  ASSERT_TRUE(replay.ok());
  EXPECT_TRUE(replay->replay);
  // The next look finds the order paid and drops the attempt without a query.
  EXPECT_EQ(rec_->RunOnce(), 0u);
  EXPECT_EQ(rec_->size(), 0u);
  EXPECT_TRUE(shop_->ListPayAttempts()->empty());
  EXPECT_EQ(shop_->ListPayments(std::nullopt)->size(), 1u);
  rec_.reset();
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(ReconcilerTest, NotifyFirstMeansNoQueryAndTheAttemptIsDropped) {
  const uint64_t pid = MakeProduct();
  Import(pid, 1);
  const OrderView o = Order(pid);
  ASSERT_TRUE(rec_->Track(Attempt(o)).ok());
  EXPECT_FALSE(Pay(o, "fake:T2").replay);
  clock_.Advance(absl::Seconds(60));
  EXPECT_EQ(rec_->RunOnce(), 0u);
  EXPECT_EQ(fake_->queries, 0);
  EXPECT_EQ(rec_->size(), 0u);
  EXPECT_EQ(Metric("keyvend_gateway_reconciled_total{gateway=\"fake\"}"), 0);
}

TEST_F(ReconcilerTest, BacksOffDoublingUpToTheMaxAndDropsAfterTheWindow) {
  const uint64_t pid = MakeProduct();
  Import(pid, 1);
  const OrderView o = Order(pid);
  ASSERT_TRUE(rec_->Track(Attempt(o)).ok());
  fake_->unreachable = true;
  std::vector<int64_t> at;  // seconds after the start of each query
  for (int s = 1; s <= 7200 + 600; ++s) {
    clock_.Advance(absl::Seconds(1));
    const int before = fake_->queries;
    rec_->RunOnce();
    if (fake_->queries != before) at.push_back(s);
  }
  // 60, then +60, +120, +240, +480, +600, +600, ... until the 2 h window.
  ASSERT_GE(at.size(), 6u);
  EXPECT_EQ(at[0], 60);
  EXPECT_EQ(at[1], 120);
  EXPECT_EQ(at[2], 240);
  EXPECT_EQ(at[3], 480);
  EXPECT_EQ(at[4], 960);
  EXPECT_EQ(at[5], 1560);
  for (size_t i = 6; i < at.size(); ++i) EXPECT_EQ(at[i] - at[i - 1], 600);
  EXPECT_LT(at.back(), 7200);
  EXPECT_EQ(rec_->size(), 0u) << "dropped after the window";
  EXPECT_TRUE(shop_->ListPayAttempts()->empty());
  EXPECT_GE(Metric("keyvend_gateway_queries_total{gateway=\"fake\",state=\"unknown\"}"), 6);
}

TEST_F(ReconcilerTest, ExpiredOrdersAreStillQueriedClosedOnesDropped) {
  const uint64_t pid = MakeProduct();
  Import(pid, 2);
  const OrderView late = Order(pid);
  const OrderView cancelled = Order(pid, 1, "other@example.com");
  ASSERT_TRUE(rec_->Track(Attempt(late)).ok());
  ASSERT_TRUE(rec_->Track(Attempt(cancelled)).ok());
  ASSERT_TRUE(shop_->CancelOrder(cancelled.order_id).ok());
  clock_.Advance(absl::Hours(1));
  ASSERT_TRUE(shop_->RunExpiry().ok());
  ASSERT_EQ(StatusOf(late), OrderStatus::kExpired);
  fake_->paid[late.order_id] =
      PaymentNotice{late.order_id, "fake:T3", late.amount_cents, late.currency};
  EXPECT_EQ(rec_->RunOnce(), 1u) << "the cancelled order's attempt is dropped unasked";
  EXPECT_NE(StatusOf(late), OrderStatus::kExpired) << "a late payment is still money";
  EXPECT_EQ(rec_->Find(cancelled.order_id, "fake"), std::nullopt);
}

TEST_F(ReconcilerTest, AttemptsSurviveAReopenAndCheckNowQueriesAtOnce) {
  const uint64_t pid = MakeProduct();
  Import(pid, 1);
  const OrderView o = Order(pid);
  ASSERT_TRUE(rec_->Track(Attempt(o)).ok());
  rec_.reset();
  Reopen();
  NewReconciler();
  ASSERT_EQ(rec_->size(), 1u);
  auto found = rec_->Find(o.order_id, "fake");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->ref, "ref-" + o.order_id.substr(0, 6));

  auto none = rec_->CheckNow(o.order_id);
  ASSERT_TRUE(none.ok());
  ASSERT_EQ(none->size(), 1u);
  EXPECT_EQ((*none)[0].state, QueryState::kNotPaid);
  fake_->paid[o.order_id] = PaymentNotice{o.order_id, "fake:T4", o.amount_cents, o.currency};
  auto paid = rec_->CheckNow(o.order_id);
  ASSERT_TRUE(paid.ok());
  ASSERT_EQ(paid->size(), 1u);
  EXPECT_EQ((*paid)[0].state, QueryState::kPaid);
  EXPECT_TRUE((*paid)[0].applied);
  EXPECT_EQ(StatusOf(o), OrderStatus::kDelivered);
  EXPECT_FALSE(rec_->CheckNow("not-an-order-id").ok());
}

TEST_F(ReconcilerTest, TheThreadStartsAndStopsCleanly) {
  rec_->Start();
  rec_->Start();
  rec_->Stop();
  rec_->Stop();
}

}  // namespace
}  // namespace kv::pay
