// Shop::PrecheckOrder: the refusal CreateOrder would give, from memory, never a different
// one — checked against CreateOrder itself on the same requests (issue 11's fast path).
#include <optional>
#include <string>

#include "gtest/gtest.h"
#include "kit/shop_fixture.h"

namespace kv {
namespace {

class PrecheckTest : public kv::testing::ShopTest {
 protected:
  // PrecheckOrder, then CreateOrder on the same request: when the precheck answers, its
  // refusal and message are CreateOrder's; when it does not, CreateOrder may do anything.
  void ExpectAgrees(const OrderRequest& req, bool expect_answer) {
    const std::optional<Shop::OrderRefusal> pre = shop_->PrecheckOrder(req);
    auto r = shop_->CreateOrder(req);
    EXPECT_EQ(pre.has_value(), expect_answer) << req.contact;
    if (!pre) return;
    ASSERT_TRUE(r.refused()) << "the precheck refused what CreateOrder accepted";
    EXPECT_EQ(r.refusal(), pre->refusal);
    EXPECT_EQ(r.message(), pre->message);
  }
};

TEST_F(PrecheckTest, RefusesExactlyWhatCreateOrderRefusesAndNothingElse) {
  const uint64_t pid = MakeProduct();
  Import(pid, 1);
  const uint64_t backorder = MakeProduct(StockMode::kReserve, /*backorder=*/true);
  ExpectAgrees(OrderRequest(pid, 0, "a@example.com"), true);           // quantity
  ExpectAgrees(OrderRequest(pid, 11, "a@example.com"), true);          // over max_per_order
  ExpectAgrees(OrderRequest(pid + 100, 1, "a@example.com"), true);     // no such product
  ExpectAgrees(OrderRequest(pid, 1, std::string("a\x01", 2)), true);   // contact
  ExpectAgrees(OrderRequest(pid, 1, "a@example.com", "short"), true);  // query password
  ExpectAgrees(OrderRequest(pid, 1, "first@example.com"), false);      // in stock: created
  ExpectAgrees(OrderRequest(pid, 1, "late@example.com"), true);        // sold out
  ExpectAgrees(OrderRequest(backorder, 1, "b@example.com"), false);    // backorders allowed
  EXPECT_EQ(shop_->Stock(pid).held, 1);
}

TEST_F(PrecheckTest, APendingLimitThatMayRefuseFirstIsLeftToCreateOrder) {
  ShopOptions o = Options();
  o.pending_orders_per_contact_max = 1;
  shop_.reset();
  auto s = Shop::Open(o);
  ASSERT_TRUE(s.ok()) << s.status();
  shop_ = std::move(*s);
  const uint64_t pid = MakeProduct();
  Import(pid, 1);
  ASSERT_TRUE(shop_->CreateOrder(OrderRequest(pid, 1, "hoarder@example.com")).ok());
  // Sold out now, but this contact is also at its pending limit, which CreateOrder checks
  // first: the precheck must not answer "sold out".
  const OrderRequest again(pid, 1, "hoarder@example.com");
  EXPECT_FALSE(shop_->PrecheckOrder(again).has_value());
  auto r = shop_->CreateOrder(again);
  ASSERT_TRUE(r.refused());
  EXPECT_EQ(r.refusal(), Refusal::kPendingLimit);
  // Another contact gets the sold-out answer from the precheck.
  ExpectAgrees(OrderRequest(pid, 1, "other@example.com"), true);
}

}  // namespace
}  // namespace kv
