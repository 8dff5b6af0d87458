// The shop's domain API: products, import, orders, payments, transitions, secrecy.
#include "shop/shop.h"

#include <dirent.h>
#include <openssl/evp.h>

#include <fstream>
#include <set>
#include <sstream>

#include "base/coding.h"
#include "kit/shop_fixture.h"
#include "limits/limits.h"

namespace kv {
namespace {

using testing::ShopTest;

TEST_F(ShopTest, ProductValidation) {
  ProductSpec p;
  p.name = "ok";
  p.price_cents = 100;
  p.currency = "usd";
  auto r = shop_->CreateProduct(p);
  ASSERT_TRUE(r.refused());
  EXPECT_EQ(r.refusal(), Refusal::kBadRequest);
  p.currency = "USD";
  p.price_cents = -1;
  EXPECT_EQ(shop_->CreateProduct(p).refusal(), Refusal::kBadRequest);
  p.price_cents = 1;
  p.name = "";
  EXPECT_EQ(shop_->CreateProduct(p).refusal(), Refusal::kBadRequest);
  p.name = "x";
  p.max_per_order = 0;
  EXPECT_EQ(shop_->CreateProduct(p).refusal(), Refusal::kBadRequest);
  p.max_per_order = 2;
  auto ok = shop_->CreateProduct(p);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->product.id, 1u);  // refusals consumed no id
  auto up = shop_->UpdateProduct(1, Patch([](ProductPatch& p) { p.price_cents = -5; }));
  EXPECT_EQ(up.refusal(), Refusal::kBadRequest);
  EXPECT_EQ(shop_->GetProduct(1)->product.price_cents, 1);  // unchanged
  EXPECT_EQ(shop_->UpdateProduct(99, ProductPatch{}).refusal(), Refusal::kProductNotFound);
}

TEST_F(ShopTest, OrderRefusals) {
  const uint64_t pid = MakeProduct(StockMode::kReserve, false, 3);
  Import(pid, 5);
  auto q0 = shop_->CreateOrder({pid, 0, "a@b.c", ""});
  EXPECT_EQ(q0.refusal(), Refusal::kInvalidQuantity);
  EXPECT_EQ(shop_->CreateOrder({pid, -3, "a@b.c", ""}).refusal(), Refusal::kInvalidQuantity);
  EXPECT_EQ(shop_->CreateOrder({pid, 4, "a@b.c", ""}).refusal(), Refusal::kQuantityLimit);
  EXPECT_EQ(shop_->CreateOrder({77, 1, "a@b.c", ""}).refusal(), Refusal::kProductNotFound);
  EXPECT_EQ(shop_->CreateOrder({pid, 1, "", ""}).refusal(), Refusal::kBadRequest);
  EXPECT_EQ(shop_->CreateOrder({pid, 1, std::string("a\nb"), ""}).refusal(), Refusal::kBadRequest);
  Order(pid, 3);
  EXPECT_EQ(shop_->CreateOrder({pid, 3, "a@b.c", ""}).refusal(), Refusal::kOutOfStock);
  Order(pid, 2);
  EXPECT_EQ(shop_->Stock(pid).sellable(), 0);
  ASSERT_TRUE(shop_->UpdateProduct(pid, Patch([](ProductPatch& p) { p.active = false; })).ok());
  EXPECT_EQ(shop_->CreateOrder({pid, 1, "a@b.c", ""}).refusal(), Refusal::kProductInactive);
  EXPECT_TRUE(shop_->ListProducts(true).empty());
  EXPECT_EQ(shop_->ListProducts(false).size(), 1u);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(ShopTest, BuyerFlowDeliversKeysOnceAndOnEveryRead) {
  const uint64_t pid = MakeProduct();
  const auto keys = Import(pid, 3);
  OrderView o = Order(pid, 2, "Buyer@Example.com", "pw1-secret");
  EXPECT_EQ(o.status, OrderStatus::kPendingPayment);
  EXPECT_EQ(o.amount_cents, 1000);
  EXPECT_EQ(o.token.size(), 32u);
  EXPECT_EQ(o.expires_at - o.created_at, absl::Seconds(900));
  auto before = shop_->GetOrder(o.order_id, o.token);
  ASSERT_TRUE(before.ok());
  EXPECT_TRUE(before->keys.empty());
  EXPECT_EQ(shop_->Stock(pid).held, 2);
  EXPECT_EQ(shop_->Stock(pid).sellable(), 1);

  PaymentResult p = Pay(o, "pay-1");
  EXPECT_EQ(p.outcome, PaymentOutcome::kApplied);
  EXPECT_FALSE(p.replay);
  EXPECT_EQ(*p.order_status, OrderStatus::kDelivered);
  auto after = shop_->GetOrder(o.order_id, o.token);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->keys.size(), 2u);
  EXPECT_EQ(after->keys[0], keys[0]);
  EXPECT_EQ(after->keys[1], keys[1]);
  // The same notify again: same answer, nothing changes.
  PaymentResult again = Pay(o, "pay-1");
  EXPECT_TRUE(again.replay);
  EXPECT_EQ(again.outcome, PaymentOutcome::kApplied);
  auto third = shop_->GetOrder(o.order_id, o.token);
  EXPECT_EQ(third->keys, after->keys);
  StockCounts s = shop_->Stock(pid);
  EXPECT_EQ(s.pool, 1);
  EXPECT_EQ(s.delivered, 2);
  EXPECT_EQ(s.held, 0);
  EXPECT_EQ(s.sellable(), 1);

  // Lookup by contact (case-insensitive) + password.
  auto found = shop_->LookupOrders("buyer@example.COM", "pw1-secret");
  ASSERT_TRUE(found.ok());
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].token, o.token);
  EXPECT_EQ((*found)[0].keys, after->keys);
  EXPECT_TRUE(shop_->LookupOrders("buyer@example.com", "wrong")->empty());
  EXPECT_TRUE(shop_->LookupOrders("other@example.com", "pw1-secret")->empty());

  // Reopen: everything survives, counters rebuilt.
  Reopen();
  auto reread = shop_->GetOrder(o.order_id, o.token);
  ASSERT_TRUE(reread.ok());
  EXPECT_EQ(reread->keys, after->keys);
  EXPECT_EQ(shop_->Stock(pid).sellable(), 1);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(ShopTest, WrongTokenLooksExactlyLikeUnknownOrder) {
  const uint64_t pid = MakeProduct();
  Import(pid, 1);
  OrderView o = Order(pid);
  auto wrong = shop_->GetOrder(o.order_id, std::string(32, '0'));
  auto unknown = shop_->GetOrder(std::string(32, 'a'), o.token);
  auto garbage = shop_->GetOrder("not-an-id", "x");
  for (auto* r : {&wrong, &unknown, &garbage}) {
    ASSERT_TRUE(r->refused());
    EXPECT_EQ(r->refusal(), Refusal::kOrderNotFound);
    EXPECT_EQ(r->message(), "no such order");
  }
}

TEST_F(ShopTest, PaymentsThatMustNotDeliverAreFlagged) {
  const uint64_t pid = MakeProduct();
  Import(pid, 5);
  OrderView o = Order(pid);
  // Unknown order, malformed id: recorded for refund.
  auto unk = shop_->ApplyPayment({std::string(32, 'b'), "p-unknown", 500, "USD"});
  ASSERT_TRUE(unk.ok());
  EXPECT_EQ(unk->flag, PaymentFlag::kUnknownOrder);
  auto bad_id = shop_->ApplyPayment({"../etc", "p-badid", 500, "USD"});
  EXPECT_EQ(bad_id->flag, PaymentFlag::kUnknownOrder);
  // Amount / currency mismatch: flagged, order untouched.
  auto amt = shop_->ApplyPayment({o.order_id, "p-amount", 499, "USD"});
  EXPECT_EQ(amt->flag, PaymentFlag::kAmountMismatch);
  auto cur = shop_->ApplyPayment({o.order_id, "p-cur", 500, "EUR"});
  EXPECT_EQ(cur->flag, PaymentFlag::kAmountMismatch);
  EXPECT_EQ(StatusOf(o), OrderStatus::kPendingPayment);
  // The real payment, then a second different one: flagged, never delivered twice.
  EXPECT_EQ(Pay(o, "p-real").outcome, PaymentOutcome::kApplied);
  auto second = shop_->ApplyPayment({o.order_id, "p-second", 500, "USD"});
  EXPECT_EQ(second->outcome, PaymentOutcome::kRefundDue);
  EXPECT_EQ(second->flag, PaymentFlag::kSecondPayment);
  EXPECT_EQ(shop_->Stock(pid).delivered, 1);
  // Bad input changes nothing.
  EXPECT_EQ(shop_->ApplyPayment({o.order_id, "", 500, "USD"}).refusal(), Refusal::kBadRequest);
  // A signed notice is money received: odd amounts and currencies are recorded and flagged,
  // lowercase currency codes are the same currency.
  EXPECT_EQ(shop_->ApplyPayment({o.order_id, "p-neg", -1, "USD"})->flag,
            PaymentFlag::kAmountMismatch);
  EXPECT_EQ(shop_->ApplyPayment({o.order_id, "p-cur2", 500, "US"})->flag,
            PaymentFlag::kAmountMismatch);
  EXPECT_EQ(shop_->ApplyPayment({o.order_id, "p-lower", 500, "usd"})->flag,
            PaymentFlag::kSecondPayment);
  OrderView lower = Order(pid);
  auto lp = shop_->ApplyPayment({lower.order_id, "p-lower-2", 500, "usd"});
  EXPECT_EQ(lp->outcome, PaymentOutcome::kApplied);
  EXPECT_EQ(*lp->order_status, OrderStatus::kDelivered);
  // A payment for a cancelled order: flagged.
  OrderView c = Order(pid);
  ASSERT_TRUE(shop_->CancelOrder(c.order_id).ok());
  auto closed = shop_->ApplyPayment({c.order_id, "p-closed", 500, "USD"});
  EXPECT_EQ(closed->flag, PaymentFlag::kOrderClosed);
  EXPECT_EQ(StatusOf(c), OrderStatus::kCancelled);
  EXPECT_TRUE(CloseAndCheck().empty());
}

// A correctly signed notice the shop cannot use (review finding 5) is money received: it is
// recorded once, flagged "malformed" (refund due), linked to its order when it names one, and
// never pays or delivers.
std::string Sha256Id(std::string_view body) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(body.data(), body.size(), md, &n, EVP_sha256(), nullptr);
  return "sha256:" + HexEncode(std::string_view(reinterpret_cast<const char*>(md), n));
}

std::optional<PaymentRecord> FindPayment(Shop& shop, const std::string& id) {
  auto all = shop.ListPayments(std::nullopt);
  EXPECT_TRUE(all.ok());
  if (!all.ok()) return std::nullopt;
  for (const PaymentView& v : *all) {
    if (v.record.payment_id == id) return v.record;
  }
  return std::nullopt;
}

TEST_F(ShopTest, SignedButUnusableNoticesAreRecordedFlaggedOnce) {
  const uint64_t pid = MakeProduct();
  Import(pid, 3);
  OrderView o = Order(pid);
  const int64_t available = shop_->Stock(pid).available;

  // No usable payment_id: the record is keyed by the body's digest.
  MalformedPaymentNotice a;
  a.raw_body = R"({"order_id":")" + o.order_id +
               R"(","payment_id":"ch 123","amount_cents":500,)"
               R"("currency":"USD","status":"succeeded"})";
  a.payment_id = "ch 123";
  a.order_id = o.order_id;
  a.amount_cents = 500;
  a.currency = "USD";
  a.problem = "payment_id must be printable";
  ASSERT_FALSE(ValidPaymentId(a.payment_id));
  auto r = shop_->RecordMalformedPayment(a);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->replay);
  EXPECT_EQ(r->outcome, PaymentOutcome::kRefundDue);
  EXPECT_EQ(r->flag, PaymentFlag::kMalformed);
  ASSERT_TRUE(r->order_status.has_value());
  EXPECT_EQ(*r->order_status, OrderStatus::kPendingPayment);
  const std::string a_id = Sha256Id(a.raw_body);
  auto rec = FindPayment(*shop_, a_id);
  ASSERT_TRUE(rec.has_value()) << a_id;
  EXPECT_EQ(rec->order_id, o.order_id) << "linked to the order it names";
  EXPECT_EQ(rec->outcome, PaymentOutcome::kRefundDue);
  EXPECT_EQ(rec->flag, PaymentFlag::kMalformed);
  EXPECT_EQ(rec->amount_cents, 500);
  EXPECT_EQ(rec->problem, a.problem);
  EXPECT_EQ(rec->body_bytes, a.raw_body.size());
  EXPECT_EQ(rec->body_excerpt, a.raw_body);

  // The gateway's retry (the same body, whatever else differs): the same record, unchanged.
  MalformedPaymentNotice retry = a;
  retry.problem = "another wording";
  clock_.Advance(absl::Seconds(30));
  auto again = shop_->RecordMalformedPayment(retry);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->replay);
  EXPECT_EQ(again->flag, PaymentFlag::kMalformed);
  EXPECT_EQ(FindPayment(*shop_, a_id)->received_ms, rec->received_ms);
  EXPECT_EQ(FindPayment(*shop_, a_id)->problem, a.problem);

  // A usable payment_id keys the record, whatever the rest of the body says.
  MalformedPaymentNotice b;
  b.raw_body = R"({"order_id":")" + o.order_id + R"(","payment_id":"pay-b","amount_cents":"500"})";
  b.payment_id = "pay-b";
  b.order_id = o.order_id;
  b.problem = "field \"amount_cents\" must be an integer";
  ASSERT_TRUE(shop_->RecordMalformedPayment(b).ok());
  MalformedPaymentNotice b2 = b;
  b2.raw_body += " ";
  EXPECT_TRUE(shop_->RecordMalformedPayment(b2)->replay);
  ASSERT_TRUE(FindPayment(*shop_, "pay-b").has_value());
  EXPECT_FALSE(FindPayment(*shop_, Sha256Id(b.raw_body)).has_value());
  // ... and that payment_id is then recorded: a well-formed notice with it is a repeat.
  auto late = shop_->ApplyPayment({o.order_id, "pay-b", 500, "USD"});
  ASSERT_TRUE(late.ok());
  EXPECT_TRUE(late->replay);
  EXPECT_EQ(late->flag, PaymentFlag::kMalformed);

  // Not even JSON, longer than the excerpt, a 3-byte character across the cut.
  MalformedPaymentNotice c;
  c.raw_body = std::string(limits::kPaymentBodyExcerptBytesMax - 1, 'x') + "\xe6\x94\xaf" +
               std::string(2000, '\xff');
  c.problem = "malformed JSON";
  ASSERT_TRUE(shop_->RecordMalformedPayment(c).ok());
  rec = FindPayment(*shop_, Sha256Id(c.raw_body));
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->order_id, "");
  EXPECT_EQ(rec->body_bytes, c.raw_body.size());
  EXPECT_EQ(rec->body_excerpt, std::string(limits::kPaymentBodyExcerptBytesMax - 1, 'x'))
      << "cut before the character that does not fit";

  // Nothing was paid, held or delivered; every malformed record is refund_due.
  EXPECT_EQ(StatusOf(o), OrderStatus::kPendingPayment);
  EXPECT_EQ(shop_->Stock(pid).available, available);
  EXPECT_EQ(shop_->Stock(pid).delivered, 0);
  auto due = shop_->ListPayments(PaymentOutcome::kRefundDue);
  ASSERT_TRUE(due.ok());
  EXPECT_EQ(due->size(), 3u);
  auto st = shop_->Stats();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->payments_refund_due, 3u);

  // The order can still be paid by a real payment; the records survive a restart and a
  // repeat still changes nothing.
  EXPECT_EQ(Pay(o, "pay-real").outcome, PaymentOutcome::kApplied);
  EXPECT_EQ(StatusOf(o), OrderStatus::kDelivered);
  Reopen();
  auto after = shop_->RecordMalformedPayment(a);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->replay);
  EXPECT_EQ(*after->order_status, OrderStatus::kDelivered);
  EXPECT_EQ(shop_->ListPayments(std::nullopt)->size(), 4u);
  EXPECT_TRUE(CloseAndCheck().empty()) << "check accepts flagged malformed records";
}

TEST_F(ShopTest, CancelAndRefundTransitions) {
  const uint64_t pid = MakeProduct();
  Import(pid, 4);
  OrderView a = Order(pid, 2);
  EXPECT_EQ(shop_->Stock(pid).sellable(), 2);
  auto c = shop_->CancelOrder(a.order_id);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->status, OrderStatus::kCancelled);
  EXPECT_EQ(shop_->Stock(pid).sellable(), 4);  // hold released
  EXPECT_EQ(shop_->CancelOrder(a.order_id).refusal(), Refusal::kInvalidState);
  EXPECT_EQ(shop_->RefundOrder(a.order_id).refusal(), Refusal::kInvalidState);

  OrderView b = Order(pid, 1);
  EXPECT_EQ(shop_->RefundOrder(b.order_id).refusal(), Refusal::kInvalidState);  // pending
  EXPECT_EQ(Pay(b).outcome, PaymentOutcome::kApplied);
  EXPECT_EQ(shop_->CancelOrder(b.order_id).refusal(), Refusal::kInvalidState);  // delivered
  auto r = shop_->RefundOrder(b.order_id);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, OrderStatus::kRefunded);
  EXPECT_EQ(shop_->RefundOrder(b.order_id).refusal(), Refusal::kInvalidState);
  // Delivered keys stay with the refunded order (they were shown; they are not resold).
  auto admin = shop_->AdminGetOrder(b.order_id);
  EXPECT_EQ(admin->keys.size(), 1u);
  EXPECT_EQ(shop_->Stock(pid).sellable(), 3);
  EXPECT_EQ(shop_->CancelOrder("zz").refusal(), Refusal::kOrderNotFound);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(ShopTest, OnPaymentModeTakesKeysAtPaymentAndRefundsWhenSoldOut) {
  const uint64_t pid = MakeProduct(StockMode::kOnPayment);
  Import(pid, 1);
  OrderView a = Order(pid);
  OrderView b = Order(pid);  // nothing held: both accepted
  EXPECT_EQ(shop_->Stock(pid).held, 0);
  EXPECT_EQ(*Pay(a).order_status, OrderStatus::kDelivered);
  PaymentResult pb = Pay(b);
  EXPECT_EQ(pb.outcome, PaymentOutcome::kRefundDue);
  EXPECT_EQ(pb.flag, PaymentFlag::kNoStock);
  EXPECT_EQ(StatusOf(b), OrderStatus::kRefundDue);
  EXPECT_EQ(shop_->CreateOrder({pid, 1, "a@b.c", ""}).refusal(), Refusal::kOutOfStock);
  ASSERT_TRUE(shop_->RefundOrder(b.order_id).ok());
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(ShopTest, ImportReportsRejectsAndDuplicatesShopWide) {
  const uint64_t p1 = MakeProduct();
  const uint64_t p2 = MakeProduct();
  auto r1 = shop_->ImportKeys(p1, "AAA\n\nBBB\nAAA\n" + std::string(300, 'x') + "\nC\x01D\nCCC\n",
                              ParseOptions{});
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(r1->imported, 3u);  // AAA BBB CCC
  EXPECT_EQ(r1->duplicates, 1u);
  ASSERT_EQ(r1->rejected.size(), 3u);
  EXPECT_EQ(r1->rejected[0].line, 2u);
  EXPECT_EQ(r1->rejected[0].reason, LineReject::kEmpty);
  EXPECT_EQ(r1->rejected[1].reason, LineReject::kTooLong);
  EXPECT_EQ(r1->rejected[2].reason, LineReject::kNonPrintable);
  ASSERT_EQ(r1->duplicate_lines.size(), 1u);
  EXPECT_EQ(r1->duplicate_lines[0].line, 4u);
  // The same code can never be stocked twice, in one product or in two.
  auto r2 = shop_->ImportKeys(p2, "BBB\nDDD\r\n\xEF\xBB\xBFnope\n", ParseOptions{});
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->imported, 2u);  // DDD, and the mid-file BOM line is a key of its own
  EXPECT_EQ(r2->duplicates, 1u);
  EXPECT_EQ(r2->duplicate_lines[0].line, 1u);
  EXPECT_FALSE(r2->duplicate_lines[0].in_input);
  auto r3 = shop_->ImportKeys(p1, "AAA\nBBB\n", ParseOptions{});
  EXPECT_EQ(r3->imported, 0u);
  EXPECT_EQ(r3->batch_id, 0u);
  EXPECT_EQ(shop_->Stock(p1).pool, 3);
  // Whole-input errors change nothing.
  ParseOptions csv;
  csv.format = KeyFormat::kCsv;
  EXPECT_EQ(shop_->ImportKeys(p1, "code\nEEE\n", csv).refusal(), Refusal::kBadRequest);
  EXPECT_EQ(shop_->ImportKeys(99, "EEE\n", ParseOptions{}).refusal(), Refusal::kProductNotFound);
  auto ok_csv = shop_->ImportKeys(p1, "id,key\n1,\"EEE\"\n2,FFF\n", csv);
  ASSERT_TRUE(ok_csv.ok());
  EXPECT_EQ(ok_csv->imported, 2u);
  EXPECT_EQ(shop_->Stock(p1).pool, 5);
  EXPECT_TRUE(CloseAndCheck().empty());
}

// A large import is looked up and indexed in tag order, not input order: the duplicates it
// reports must still be the right lines, and every fresh key must be indexed under its own
// tag (a second import of the same input finds all of them stored).
TEST_F(ShopTest, MixedImportReportsExactlyTheStoredLinesAndIndexesEveryFreshKey) {
  const uint64_t p = MakeProduct();
  std::string first, mixed;
  std::vector<uint32_t> stored_lines;
  for (int i = 0; i < 3000; ++i) {
    const std::string k = "MIX-" + std::to_string(i * 7919 % 100003) + "-K\n";
    if (i % 3 == 0) {
      first += k;
      stored_lines.push_back(static_cast<uint32_t>(i + 1));
    }
    mixed += k;
  }
  auto r0 = shop_->ImportKeys(p, first, ParseOptions{});
  ASSERT_TRUE(r0.ok());
  ASSERT_EQ(r0->imported, 1000u);
  auto r1 = shop_->ImportKeys(p, mixed, ParseOptions{});
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(r1->imported, 2000u);
  EXPECT_EQ(r1->duplicates, 1000u);
  std::vector<uint32_t> reported;
  for (const DuplicateLine& d : r1->duplicate_lines) {
    EXPECT_FALSE(d.in_input);
    reported.push_back(d.line);
  }
  EXPECT_EQ(reported, stored_lines);
  auto r2 = shop_->ImportKeys(p, mixed, ParseOptions{});
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->imported, 0u);
  EXPECT_EQ(r2->duplicates, 3000u);
  EXPECT_EQ(shop_->Stock(p).pool, 3000);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(ShopTest, RetiredBatchIsNeverSold) {
  const uint64_t pid = MakeProduct(StockMode::kReserve, false, 10);
  const auto good = Import(pid, 3, "GOOD");
  auto bad = shop_->ImportKeys(pid, "BAD-1\nBAD-2\nBAD-3\n", ParseOptions{});
  ASSERT_TRUE(bad.ok());
  OrderView o = Order(pid, 4);  // needs one key of the bad batch... which gets retired
  auto ret = shop_->RetireBatch(pid, bad->batch_id);
  ASSERT_TRUE(ret.ok());
  EXPECT_EQ(ret->retired, 3u);
  EXPECT_EQ(shop_->RetireBatch(pid, 999).refusal(), Refusal::kNotFound);
  // The hold of 4 is no longer covered by the pool (3 keys): payment refunds, never a bad key.
  PaymentResult p = Pay(o);
  EXPECT_EQ(p.flag, PaymentFlag::kNoStock);
  OrderView o2 = Order(pid, 3);
  EXPECT_EQ(Pay(o2).outcome, PaymentOutcome::kApplied);
  auto got = shop_->AdminGetOrder(o2.order_id);
  ASSERT_EQ(got->keys.size(), 3u);
  for (const auto& k : got->keys) EXPECT_EQ(k.rfind("GOOD", 0), 0u) << "a retired key was sold";
  EXPECT_EQ(shop_->Stock(pid).retired, 3);
  auto batches = shop_->ListBatches(pid);
  ASSERT_EQ(batches->size(), 2u);
  EXPECT_TRUE((*batches)[1].retired_flag);
  EXPECT_TRUE(CloseAndCheck().empty());
}

// Invariant 6: a copied data dir alone does not leak keys.
TEST_F(ShopTest, KeysAreEncryptedAtRest) {
  const uint64_t pid = MakeProduct();
  const auto keys = Import(pid, 50, "PLAINTEXTSECRET");
  OrderView o = Order(pid, 2);
  EXPECT_EQ(Pay(o).outcome, PaymentOutcome::kApplied);
  ASSERT_TRUE(
      shop_->db()->raw()->Flush(rocksdb::FlushOptions(), shop_->db()->cf(storage::kCfPool)).ok());
  shop_.reset();
  DIR* d = opendir(tmp_.Sub("data").c_str());
  ASSERT_NE(d, nullptr);
  int files = 0;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::ifstream f(tmp_.Sub("data/" + name), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    EXPECT_EQ(ss.str().find("PLAINTEXTSECRET"), std::string::npos) << name;
    ++files;
  }
  closedir(d);
  EXPECT_GT(files, 3);
}

// The write-ahead delivery path is gone (keys are assigned in the payment's batch), so a
// `pending` or `failed` delivery-log entry is nothing any keyvend build wrote: a dir holding
// one is refused whole, naming the count, and `keyvend check` reports each; the refusal
// writes nothing, so the dir opens again once the entries are gone.
TEST_F(ShopTest, ADirWithWriteAheadDeliveriesIsRefusedAndChecked) {
  const uint64_t pid = MakeProduct(StockMode::kReserve, /*backorder=*/true);
  Import(pid, 1);
  OrderView held = Order(pid);                                       // holds the only key
  OrderView waiting = Order(pid);                                    // accepted unheld
  EXPECT_EQ(*Pay(waiting).order_status, OrderStatus::kBackordered);  // a live log entry
  shop_.reset();
  const auto write_raw = [&](const std::function<void(storage::Db&, rocksdb::WriteBatch*)>& f) {
    storage::DataDirOptions o;
    o.data_dir = tmp_.Sub("data");
    o.master_key_file = tmp_.Sub("master.key");
    auto d = storage::OpenDataDir(o, &random_);
    ASSERT_TRUE(d.ok()) << d.status();
    rocksdb::WriteBatch b;
    f(*d->db, &b);
    ASSERT_TRUE(d->db->Write(&b).ok());
  };
  std::string oid;
  ASSERT_TRUE(ParseOrderId(held.order_id, &oid));
  write_raw([&](storage::Db& db, rocksdb::WriteBatch* b) {
    DeliveryEntry e;
    e.oid = oid;
    e.product_id = pid;
    e.quantity = 1;
    e.state = DeliveryState::kPending;
    e.created_ms = e.next_attempt_ms = 1;
    b->Put(db.cf(storage::kCfDeliveryLog), storage::U64Key(1000), EncodeDelivery(e));
    e.oid = std::string(storage::kOrderIdBytes, 'z');
    e.state = DeliveryState::kFailed;
    e.attempts = 8;
    e.last_error = "injected";
    b->Put(db.cf(storage::kCfDeliveryLog), storage::U64Key(1001), EncodeDelivery(e));
  });

  auto refused = Shop::Open(Options());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_NE(refused.status().message().find("holds 2 pending or failed"), std::string::npos)
      << refused.status();
  std::vector<std::string> found = CheckDir(tmp_.Sub("data"));
  int write_ahead = 0;
  for (const std::string& v : found) {
    if (v.find("a write-ahead delivery") != std::string::npos) ++write_ahead;
  }
  EXPECT_EQ(write_ahead, 2) << ::testing::PrintToString(found);

  write_raw([&](storage::Db& db, rocksdb::WriteBatch* b) {
    b->Delete(db.cf(storage::kCfDeliveryLog), storage::U64Key(1000));
    b->Delete(db.cf(storage::kCfDeliveryLog), storage::U64Key(1001));
  });
  Reopen();
  EXPECT_EQ(StatusOf(held), OrderStatus::kPendingPayment);
  EXPECT_EQ(StatusOf(waiting), OrderStatus::kBackordered);
  EXPECT_EQ(shop_->Stock(pid).held, 1);
  EXPECT_EQ(shop_->Stock(pid).owed, 1);
  EXPECT_EQ(shop_->Backlog()->backordered, 1u);
  EXPECT_TRUE(CloseAndCheck().empty());
}

}  // namespace
}  // namespace kv
