// The delivery log's outbound work (issue 14): webhook events and mails written in the batch
// of the state change that causes them, the outbox in memory, leases, retries, failures,
// replays and settling by hand.
#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "base/time_format.h"
#include "kit/shop_fixture.h"

namespace kv {
namespace {

using testing::ShopTest;

class OutboundTest : public ShopTest {
 protected:
  void SetUp() override {
    tweak_options_ = [this](ShopOptions& o) {
      o.webhook_events = webhook_;
      o.mail_contact = [](std::string_view c) { return c.find('@') != std::string_view::npos; };
      o.write_fault = [this]() -> absl::Status {
        return fail_writes_.load() ? absl::UnavailableError("injected") : absl::OkStatus();
      };
    };
    ShopTest::SetUp();
  }

  std::vector<OutboundEvent> Events(const OrderView& o) {
    auto r = shop_->ListOutbound(std::nullopt, o.order_id);
    EXPECT_TRUE(r.ok());
    return r.ok() ? r.value() : std::vector<OutboundEvent>{};
  }
  int64_t Count(OutboundKind k, OutboundState s) {
    return shop_->OutboundCounts().count[static_cast<int>(k)][static_cast<int>(s)];
  }
  std::vector<OutboundJob> Take(OutboundKind k, size_t max = 100) {
    auto r = shop_->TakeDueOutbound(k, max, absl::ZeroDuration());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::vector<OutboundJob>{};
  }

  bool webhook_ = true;
  std::atomic<bool> fail_writes_{false};
};

TEST_F(OutboundTest, DeliveryWritesWebhookAndMailInItsBatch) {
  const uint64_t pid = MakeProduct();
  Import(pid, 3);
  OrderView o = Order(pid, 2, "buyer@example.com");
  EXPECT_TRUE(Events(o).empty());  // a new order causes nothing
  EXPECT_EQ(*Pay(o).order_status, OrderStatus::kDelivered);
  auto ev = Events(o);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].id, "evt_" + o.order_id + "_delivered");
  EXPECT_EQ(ev[0].kind, OutboundKind::kWebhook);
  EXPECT_EQ(ev[1].id, "mail_" + o.order_id + "_delivered");
  EXPECT_EQ(ev[1].kind, OutboundKind::kMail);
  for (const OutboundEvent& e : ev) {
    EXPECT_EQ(e.status, OrderStatus::kDelivered);
    EXPECT_EQ(e.state, OutboundState::kPending);
    EXPECT_EQ(e.attempts, 0u);
    EXPECT_EQ(e.created_ms, UnixMs(clock_.WallNow()));
  }
  EXPECT_EQ(Count(OutboundKind::kWebhook, OutboundState::kPending), 1);
  EXPECT_EQ(Count(OutboundKind::kMail, OutboundState::kPending), 1);
  // The webhook's job never carries keys; the mail's does, and the token for its link.
  auto wh = Take(OutboundKind::kWebhook);
  ASSERT_EQ(wh.size(), 1u);
  EXPECT_TRUE(wh[0].order.keys.empty());
  EXPECT_TRUE(wh[0].token.empty());
  EXPECT_GT(wh[0].delivered_ms, 0);
  auto mail = Take(OutboundKind::kMail);
  ASSERT_EQ(mail.size(), 1u);
  EXPECT_EQ(mail[0].order.keys.size(), 2u);
  EXPECT_EQ(mail[0].token, o.token);
  EXPECT_EQ(mail[0].product_name, "product 1");
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(OutboundTest, NoMailForAContactThatIsNoAddressAndNoWebhookWhenOff) {
  webhook_ = false;
  Reopen();
  const uint64_t pid = MakeProduct();
  Import(pid, 2);
  OrderView phone = Order(pid, 1, "+86 138 0000 0000");
  (void)Pay(phone);
  EXPECT_TRUE(Events(phone).empty());
  OrderView mail = Order(pid, 1, "a@b.example");
  (void)Pay(mail);
  auto ev = Events(mail);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, OutboundKind::kMail);
}

TEST_F(OutboundTest, AFailedBatchQueuesNothing) {
  const uint64_t pid = MakeProduct();
  Import(pid, 1);
  OrderView o = Order(pid, 1);
  fail_writes_ = true;
  auto r = shop_->ApplyPayment(PaymentNotice{o.order_id, "p1", o.amount_cents, o.currency});
  EXPECT_FALSE(r.ok());
  fail_writes_ = false;
  EXPECT_TRUE(Events(o).empty());
  EXPECT_EQ(Count(OutboundKind::kWebhook, OutboundState::kPending), 0);
  EXPECT_TRUE(Take(OutboundKind::kWebhook).empty());
  // The same payment again commits, with its events.
  EXPECT_EQ(*Pay(o, "p1").order_status, OrderStatus::kDelivered);
  EXPECT_EQ(Events(o).size(), 2u);
}

TEST_F(OutboundTest, EveryEventStatusAndNoneForRefusedOrSilentChanges) {
  const uint64_t pid = MakeProduct(StockMode::kReserve, /*backorder=*/true);
  // cancelled
  Import(pid, 1);
  OrderView c = Order(pid, 1);
  ASSERT_TRUE(shop_->CancelOrder(c.order_id).ok());
  ASSERT_EQ(Events(c).size(), 1u);
  EXPECT_EQ(Events(c)[0].id, "evt_" + c.order_id + "_cancelled");
  // A refused change (cancelling it again) writes nothing more.
  EXPECT_TRUE(shop_->CancelOrder(c.order_id).refused());
  EXPECT_EQ(Events(c).size(), 1u);
  // expired: no event.
  OrderView e = Order(pid, 1);
  clock_.Advance(absl::Hours(1));
  ASSERT_TRUE(shop_->RunExpiry().ok());
  EXPECT_EQ(StatusOf(e), OrderStatus::kExpired);
  EXPECT_TRUE(Events(e).empty());
  // backordered, then delivered by an import (the import's batch), then refunded.
  const uint64_t pid3 = MakeProduct(StockMode::kOnPayment, /*backorder=*/true);
  OrderView b = Order(pid3, 2);
  EXPECT_EQ(*Pay(b).order_status, OrderStatus::kBackordered);
  Import(pid3, 2);
  EXPECT_EQ(StatusOf(b), OrderStatus::kDelivered);
  ASSERT_TRUE(shop_->RefundOrder(b.order_id).ok());
  std::vector<std::string> ids;
  for (const OutboundEvent& ev : Events(b)) ids.push_back(ev.id);
  const std::string p = "_" + b.order_id + "_";
  EXPECT_EQ(ids, (std::vector<std::string>{"evt" + p + "delivered", "evt" + p + "backordered",
                                           "evt" + p + "refunded", "mail" + p + "delivered"}));
  // refund_due (no backorder allowed, no keys).
  const uint64_t pid2 = MakeProduct(StockMode::kOnPayment, /*backorder=*/false);
  Import(pid2, 1);
  OrderView r1 = Order(pid2, 1), r2 = Order(pid2, 1);
  (void)Pay(r1);
  EXPECT_EQ(*Pay(r2).order_status, OrderStatus::kRefundDue);
  ASSERT_EQ(Events(r2).size(), 1u);
  EXPECT_EQ(Events(r2)[0].id, "evt_" + r2.order_id + "_refund_due");
  // A replayed payment changes nothing and writes nothing.
  (void)Pay(r2);
  EXPECT_EQ(Events(r2).size(), 1u);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(OutboundTest, EventIdsRoundTripAndRefuseOtherText) {
  std::string raw(16, '\x07');
  const std::string id = OutboundEventId(raw, OutboundKind::kWebhook, OrderStatus::kRefundDue);
  EXPECT_EQ(id, "evt_07070707070707070707070707070707_refund_due");
  std::string key;
  ASSERT_TRUE(ParseOutboundEventId(id, &key));
  EXPECT_EQ(key, storage::OutboundKey(raw, 1, static_cast<uint8_t>(OrderStatus::kRefundDue)));
  for (const char* bad : {"", "evt_", "evt_07070707070707070707070707070707_expired",
                          "evt_07070707070707070707070707070707_paid",
                          "evt_0707070707070707070707070707070_delivered",
                          "evt_07070707070707070707070707070707delivered",
                          "mail_0707070707070707070707070707070G_delivered",
                          "xyz_07070707070707070707070707070707_delivered"}) {
    EXPECT_FALSE(ParseOutboundEventId(bad, &key)) << bad;
  }
}

TEST_F(OutboundTest, RetryKeepsTheIdFailedIsReplayedDeferredIsNoAttempt) {
  const uint64_t pid = MakeProduct();
  Import(pid, 1);
  OrderView o = Order(pid, 1, "no mail");
  (void)Pay(o);
  auto jobs = Take(OutboundKind::kWebhook);
  ASSERT_EQ(jobs.size(), 1u);
  const std::string id = jobs[0].event.id;
  // Leased: not handed out twice, not settled under the worker.
  EXPECT_TRUE(Take(OutboundKind::kWebhook).empty());
  EXPECT_EQ(shop_->SettleOutbound(id, "x").refusal(), Refusal::kInvalidState);
  const int64_t now = UnixMs(clock_.WallNow());
  ASSERT_TRUE(shop_->FinishOutbound(jobs[0], OutboundFinish::kRetry, now + 5000, "HTTP 500").ok());
  EXPECT_TRUE(Take(OutboundKind::kWebhook).empty());  // not due yet
  clock_.Advance(absl::Seconds(5));
  jobs = Take(OutboundKind::kWebhook);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].event.id, id);
  EXPECT_EQ(jobs[0].event.attempts, 1u);
  EXPECT_EQ(jobs[0].event.last_error, "HTTP 500");
  // The breaker was open: rescheduled, not an attempt.
  ASSERT_TRUE(shop_->FinishOutbound(jobs[0], OutboundFinish::kDeferred, 0, "breaker open").ok());
  jobs = Take(OutboundKind::kWebhook);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].event.attempts, 1u);
  ASSERT_TRUE(shop_->FinishOutbound(jobs[0], OutboundFinish::kFailed, 0, "HTTP 500").ok());
  EXPECT_EQ(Count(OutboundKind::kWebhook, OutboundState::kFailed), 1);
  EXPECT_EQ(Count(OutboundKind::kWebhook, OutboundState::kPending), 0);
  EXPECT_TRUE(Take(OutboundKind::kWebhook).empty());
  auto failed = shop_->ListOutbound(OutboundState::kFailed, "");
  ASSERT_TRUE(failed.ok());
  ASSERT_EQ(failed->size(), 1u);
  EXPECT_EQ((*failed)[0].attempts, 2u);
  // Replay: one by id (only a failed one), or all.
  EXPECT_EQ(shop_->ReplayOutbound("evt_" + o.order_id + "_cancelled").refusal(),
            Refusal::kNotFound);
  auto n = shop_->ReplayOutbound(id);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1u);
  EXPECT_EQ(shop_->ReplayOutbound(id).refusal(), Refusal::kInvalidState);
  jobs = Take(OutboundKind::kWebhook);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].event.attempts, 0u);
  ASSERT_TRUE(shop_->FinishOutbound(jobs[0], OutboundFinish::kSent, 0, "").ok());
  EXPECT_TRUE(Events(o).empty());
  EXPECT_EQ(Count(OutboundKind::kWebhook, OutboundState::kPending), 0);
  EXPECT_EQ(Count(OutboundKind::kWebhook, OutboundState::kFailed), 0);
}

// Several leased entries finish in one write (FinishOutboundMany): all or none, each entry
// once and only while leased, written from the jobs without a read.
TEST_F(OutboundTest, FinishManyWritesAllOrNoneAndOnlyLeasedEntries) {
  const uint64_t pid = MakeProduct();
  Import(pid, 4);
  for (int i = 0; i < 4; ++i) (void)Pay(Order(pid, 1, "no mail"));
  auto jobs = Take(OutboundKind::kWebhook);
  ASSERT_EQ(jobs.size(), 4u);
  const int64_t now = UnixMs(clock_.WallNow());
  // Sent, retry, failed, deferred, in the jobs' order (items point into `jobs`).
  auto outcomes = [&]() -> std::vector<OutboundFinishItem> {
    return {{&jobs[0], OutboundFinish::kSent, 0, ""},
            {&jobs[1], OutboundFinish::kRetry, now + 5000, "HTTP 500"},
            {&jobs[2], OutboundFinish::kFailed, 0, "HTTP 410"},
            {&jobs[3], OutboundFinish::kDeferred, now + 5000, "circuit breaker open"}};
  };
  std::vector<OutboundFinishItem> items = outcomes();
  auto by_id = [&]() {
    std::map<std::string, OutboundEvent> m;
    auto all = shop_->ListOutbound(std::nullopt, "");
    EXPECT_TRUE(all.ok());
    if (all.ok()) {
      for (const OutboundEvent& e : *all) m[e.id] = e;
    }
    return m;
  };

  // The same entry twice: refused, nothing written, the leases kept.
  EXPECT_EQ(
      shop_->FinishOutboundMany({items[0], {&jobs[0], OutboundFinish::kRetry, now, "x"}}).code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(by_id().size(), 4u);
  EXPECT_TRUE(Take(OutboundKind::kWebhook).empty());

  // A failed write (the failed item makes it synced: through the committer's fault hook):
  // nothing of any item written, every lease released, each due again a second later.
  fail_writes_ = true;
  EXPECT_FALSE(shop_->FinishOutboundMany(items).ok());
  fail_writes_ = false;
  for (const auto& [id, e] : by_id()) {
    EXPECT_EQ(e.state, OutboundState::kPending) << id;
    EXPECT_EQ(e.attempts, 0u) << id;
  }
  EXPECT_TRUE(Take(OutboundKind::kWebhook).empty());
  clock_.Advance(absl::Seconds(1));
  jobs = Take(OutboundKind::kWebhook);
  ASSERT_EQ(jobs.size(), 4u);
  items = outcomes();
  const absl::Status finished = shop_->FinishOutboundMany(items);
  ASSERT_TRUE(finished.ok()) << finished;
  auto m = by_id();
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(m.count(jobs[0].event.id), 0u);  // sent: deleted
  EXPECT_EQ(m[jobs[1].event.id].state, OutboundState::kPending);
  EXPECT_EQ(m[jobs[1].event.id].attempts, 1u);
  EXPECT_EQ(m[jobs[1].event.id].last_error, "HTTP 500");
  EXPECT_EQ(m[jobs[1].event.id].next_attempt_ms, now + 5000);
  EXPECT_EQ(m[jobs[2].event.id].state, OutboundState::kFailed);
  EXPECT_EQ(m[jobs[2].event.id].attempts, 1u);
  EXPECT_EQ(m[jobs[2].event.id].last_error, "HTTP 410");
  EXPECT_EQ(m[jobs[3].event.id].state, OutboundState::kPending);
  EXPECT_EQ(m[jobs[3].event.id].attempts, 0u);  // deferred: not an attempt
  EXPECT_EQ(Count(OutboundKind::kWebhook, OutboundState::kPending), 2);
  EXPECT_EQ(Count(OutboundKind::kWebhook, OutboundState::kFailed), 1);

  // Finished jobs are not leased any more: a second finish is refused and writes nothing.
  EXPECT_EQ(shop_->FinishOutbound(jobs[0], OutboundFinish::kSent, 0, "").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(shop_->FinishOutbound(jobs[1], OutboundFinish::kFailed, 0, "late").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(by_id()[jobs[1].event.id].state, OutboundState::kPending);

  Reopen();  // what memory says is what the CF holds
  EXPECT_EQ(Count(OutboundKind::kWebhook, OutboundState::kPending), 2);
  EXPECT_EQ(Count(OutboundKind::kWebhook, OutboundState::kFailed), 1);
  auto reopened = by_id();
  ASSERT_EQ(reopened.size(), m.size());
  for (const auto& [id, e] : m) {
    EXPECT_EQ(reopened[id].state, e.state) << id;
    EXPECT_EQ(reopened[id].attempts, e.attempts) << id;
    EXPECT_EQ(reopened[id].last_error, e.last_error) << id;
  }
}

TEST_F(OutboundTest, SettleByHandIsRecordedAndNeverSent) {
  const uint64_t pid = MakeProduct();
  Import(pid, 1);
  OrderView o = Order(pid, 1, "no mail");
  (void)Pay(o);
  const std::string id = "evt_" + o.order_id + "_delivered";
  EXPECT_EQ(shop_->SettleOutbound(id, "").refusal(), Refusal::kBadRequest);
  EXPECT_EQ(shop_->SettleOutbound(id, "bad\nreason").refusal(), Refusal::kBadRequest);
  EXPECT_EQ(shop_->SettleOutbound("evt_" + o.order_id + "_refunded", "x").refusal(),
            Refusal::kNotFound);
  auto s = shop_->SettleOutbound(id, "merchant confirmed by phone");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->state, OutboundState::kSettled);
  EXPECT_EQ(s->last_error, "settled by hand: merchant confirmed by phone");
  EXPECT_EQ(shop_->SettleOutbound(id, "again").refusal(), Refusal::kInvalidState);
  EXPECT_TRUE(Take(OutboundKind::kWebhook).empty());
  EXPECT_EQ(Count(OutboundKind::kWebhook, OutboundState::kPending), 0);
  EXPECT_EQ(Count(OutboundKind::kWebhook, OutboundState::kSettled), 1);
  Reopen();  // the record survives, as settled
  ASSERT_EQ(Events(o).size(), 1u);
  EXPECT_EQ(Events(o)[0].state, OutboundState::kSettled);
  EXPECT_EQ(Count(OutboundKind::kWebhook, OutboundState::kSettled), 1);
  EXPECT_TRUE(Take(OutboundKind::kWebhook).empty());
}

TEST_F(OutboundTest, OutboxIsRebuiltOnOpenAndReplayed) {
  const uint64_t pid = MakeProduct();
  Import(pid, 5);
  std::vector<OrderView> orders;
  for (int i = 0; i < 5; ++i) {
    orders.push_back(Order(pid, 1, "b" + std::to_string(i) + "@x.example"));
    (void)Pay(orders.back());
  }
  auto jobs = Take(OutboundKind::kWebhook, 2);
  ASSERT_EQ(jobs.size(), 2u);
  ASSERT_TRUE(shop_->FinishOutbound(jobs[0], OutboundFinish::kSent, 0, "").ok());
  ASSERT_TRUE(shop_->FinishOutbound(jobs[1], OutboundFinish::kFailed, 0, "HTTP 410").ok());
  // A third is leased when the process stops: it is pending again after the restart.
  ASSERT_EQ(Take(OutboundKind::kWebhook, 1).size(), 1u);
  Reopen();
  EXPECT_EQ(Count(OutboundKind::kWebhook, OutboundState::kPending), 3);
  EXPECT_EQ(Count(OutboundKind::kWebhook, OutboundState::kFailed), 1);
  EXPECT_EQ(Count(OutboundKind::kMail, OutboundState::kPending), 5);
  EXPECT_EQ(Take(OutboundKind::kWebhook).size(), 3u);
  EXPECT_EQ(Take(OutboundKind::kMail).size(), 5u);
  EXPECT_TRUE(CloseAndCheck().empty());
}

}  // namespace
}  // namespace kv

namespace kv {
namespace {

// Backlog() counts from memory (issue 14); a scan of the log must agree, before and after a
// reopen (which rebuilds memory from the log).
class BacklogMemoryTest : public testing::ShopTest {
 protected:
  void ExpectBacklogMatchesTheLog(const char* when) {
    SCOPED_TRACE(when);
    auto b = shop_->Backlog();
    ASSERT_TRUE(b.ok());
    auto log = shop_->ListDeliveries(std::nullopt);
    ASSERT_TRUE(log.ok());
    DeliveryBacklog want;
    for (const DeliveryEntry& d : *log) {
      EXPECT_EQ(d.state, DeliveryState::kBackordered);
      ++want.backordered;
      if (want.oldest_backordered_ms == 0 || d.created_ms < want.oldest_backordered_ms) {
        want.oldest_backordered_ms = d.created_ms;
      }
    }
    EXPECT_EQ(b->backordered, want.backordered);
    EXPECT_EQ(b->oldest_backordered_ms, want.oldest_backordered_ms);
  }
};

// Every writer of the log: a payment's backorder, the worker serving one from a released
// hold, a refund, a reopen, an import.
TEST_F(BacklogMemoryTest, CountsFollowEveryLogWriteAndAreRebuiltOnOpen) {
  const uint64_t pid = MakeProduct(StockMode::kReserve, /*backorder=*/true);
  Import(pid, 2);
  std::vector<OrderView> orders;
  for (int i = 0; i < 6; ++i) {
    orders.push_back(Order(pid, 1, "b" + std::to_string(i) + "@x.example"));  // 2 hold
    clock_.Advance(absl::Milliseconds(10));
  }
  for (int i = 2; i < 6; ++i) {
    EXPECT_EQ(*Pay(orders[i]).order_status, OrderStatus::kBackordered);
    clock_.Advance(absl::Milliseconds(10));
  }
  EXPECT_EQ(*Pay(orders[0]).order_status, OrderStatus::kDelivered);  // no log entry
  ExpectBacklogMatchesTheLog("4 backordered");
  EXPECT_EQ(shop_->Backlog()->backordered, 4u);
  const int64_t oldest = shop_->Backlog()->oldest_backordered_ms;
  ASSERT_TRUE(shop_->CancelOrder(orders[1].order_id).ok());
  ASSERT_EQ(*shop_->RunBackorders(), 1u);  // the released key serves the oldest
  ExpectBacklogMatchesTheLog("after the worker");
  EXPECT_EQ(StatusOf(orders[2]), OrderStatus::kDelivered);
  EXPECT_EQ(shop_->Backlog()->backordered, 3u);
  EXPECT_GT(shop_->Backlog()->oldest_backordered_ms, oldest);
  ASSERT_TRUE(shop_->RefundOrder(orders[5].order_id).ok());
  ExpectBacklogMatchesTheLog("after a refund");
  Reopen();
  ExpectBacklogMatchesTheLog("after a reopen");
  EXPECT_EQ(shop_->Backlog()->backordered, 2u);
  Import(pid, 2);  // serves both
  ExpectBacklogMatchesTheLog("after an import");
  EXPECT_EQ(shop_->Backlog()->backordered, 0u);
  EXPECT_EQ(shop_->Backlog()->oldest_backordered_ms, 0);
  EXPECT_TRUE(CloseAndCheck().empty());
}

}  // namespace
}  // namespace kv
