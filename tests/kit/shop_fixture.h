// The shop fixture of the unit tests: a Shop on a temp dir with a FakeClock and no
// background threads, plus helpers that assert as they go. Test-only.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kit/files.h"
#include "shop/check.h"
#include "shop/shop.h"

namespace kv::testing {

class ShopTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  ShopOptions Options() {
    ShopOptions o;
    o.data_dir = tmp_.Sub("data");
    o.master_key_file = tmp_.Sub("master.key");
    o.clock = &clock_;
    o.random = &random_;
    o.start_workers = false;
    o.block_cache_bytes = 8 << 20;
    if (tweak_options_) tweak_options_(o);
    return o;
  }

  void Reopen() {
    shop_.reset();
    auto s = Shop::Open(Options());
    ASSERT_TRUE(s.ok()) << s.status();
    shop_ = std::move(*s);
  }

  uint64_t MakeProduct(StockMode mode = StockMode::kReserve, bool backorder = false,
                       uint32_t max_per_order = 10, int64_t price = 500) {
    ProductSpec p;
    p.name = absl::StrCat("product ", ++products_made_);
    p.price_cents = price;
    p.currency = "USD";
    p.stock_mode = mode;
    p.allow_backorder = backorder;
    p.max_per_order = max_per_order;
    auto r = shop_->CreateProduct(p);
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->product.id : 0;
  }

  // Imports n fresh keys "<prefix>-<i>"; returns them.
  std::vector<std::string> Import(uint64_t pid, int n, const std::string& prefix = "") {
    std::vector<std::string> keys;
    std::string text;
    const std::string p = prefix.empty() ? absl::StrCat("KEY", ++imports_made_) : prefix;
    for (int i = 0; i < n; ++i) {
      keys.push_back(absl::StrCat(p, "-", i, "-XXXX-YYYY"));
      text += keys.back() + "\n";
    }
    auto r = shop_->ImportKeys(pid, text, ParseOptions{});
    EXPECT_TRUE(r.ok());
    if (r.ok()) {
      EXPECT_EQ(r->imported, static_cast<uint64_t>(n));
    }
    return keys;
  }

  OrderView Order(uint64_t pid, int q = 1, const std::string& contact = "buyer@example.com",
                  const std::string& password = "") {
    auto r = shop_->CreateOrder(OrderRequest{pid, q, contact, password});
    EXPECT_TRUE(r.ok()) << (r.refused() ? std::string(RefusalCode(r.refusal())) : "");
    return r.ok() ? r.value() : OrderView{};
  }

  PaymentResult Pay(const OrderView& o, const std::string& payment_id = "") {
    PaymentNotice n{o.order_id, payment_id.empty() ? "pay-" + o.order_id : payment_id,
                    o.amount_cents, o.currency};
    auto r = shop_->ApplyPayment(n);
    EXPECT_TRUE(r.ok());
    return r.ok() ? r.value() : PaymentResult{};
  }

  template <typename F>
  static ProductPatch Patch(F set) {
    ProductPatch p;
    set(p);
    return p;
  }

  OrderStatus StatusOf(const OrderView& o) {
    auto r = shop_->AdminGetOrder(o.order_id);
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->status : OrderStatus::kCancelled;
  }

  // Closes the shop and runs the offline checker; returns its violations.
  std::vector<std::string> CloseAndCheck() {
    shop_.reset();
    return CheckDir(tmp_.Sub("data"));
  }
  // Opens `dir` (a stopped data dir: the shop's, or e.g. a restored one) with the shop's key
  // and runs the offline check; its violations, or one entry saying why it could not run.
  std::vector<std::string> CheckDir(const std::string& dir) {
    auto d = storage::OpenExistingDataDir(dir, tmp_.Sub("master.key"));
    EXPECT_TRUE(d.ok()) << d.status();
    if (!d.ok()) return {"cannot open"};
    auto rep = CheckShop(*d->db, *d->cipher);
    EXPECT_TRUE(rep.ok()) << rep.status();
    if (rep.ok()) {
      for (const std::string& v : rep->violations)
        std::fprintf(stderr, "VIOLATION: %s\n", v.c_str());
    }
    return rep.ok() ? rep->violations : std::vector<std::string>{"check failed"};
  }

  TempDir tmp_;
  FakeClock clock_;
  SeededRandom random_{42};
  std::function<void(ShopOptions&)> tweak_options_;  // applied last by Options()
  std::unique_ptr<Shop> shop_;
  int products_made_ = 0;
  int imports_made_ = 0;
};

}  // namespace kv::testing
