// Order lookup and token reads under brute force (issue 9 items 7 and 8): the per-contact
// and per-order lockouts, the query password's minimum, the constant work of a failing
// lookup, and the scope of an Idempotency-Key.
#include "base/coding.h"
#include "kit/shop_fixture.h"
#include "rocksdb/write_batch.h"
#include "shop/secrets.h"
#include "storage/schema.h"

namespace kv {
namespace {

using testing::ShopTest;

class LookupTest : public ShopTest {
 protected:
  void SetUp() override {
    ShopTest::SetUp();
    pid_ = MakeProduct(StockMode::kReserve, false, 10);
    Import(pid_, 20);
  }

  // A lookup that must be answered (not locked); returns how many orders it found.
  size_t Found(const std::string& contact, const std::string& pw, LookupWork* w = nullptr) {
    auto r = shop_->LookupOrders(contact, pw, w);
    EXPECT_TRUE(r.ok()) << (r.refused() ? r.message() : "error");
    return r.ok() ? r->size() : 0;
  }

  // The seconds a locked lookup says to wait; 0 when it was answered.
  int64_t LockedFor(const std::string& contact, const std::string& pw) {
    auto r = shop_->LookupOrders(contact, pw);
    if (r.ok()) return 0;
    EXPECT_TRUE(r.refused());
    EXPECT_EQ(r.refusal(), Refusal::kRateLimited);
    EXPECT_FALSE(r.message().empty());
    return r.retry_after_seconds();
  }

  uint64_t pid_ = 0;
};

TEST_F(LookupTest, ShortQueryPasswordIsRefusedAtCreationAndNothingIsCreated) {
  const StockCounts before = shop_->Stock(pid_);
  for (const std::string pw :
       {"12345", "pw", "x", "\xC3\xA4\xC3\xA4\xC3\xA4" /* 3 chars, 6 bytes */}) {
    auto r = shop_->CreateOrder({pid_, 1, "short@example.com", pw});
    ASSERT_TRUE(r.refused()) << pw;
    EXPECT_EQ(r.refusal(), Refusal::kBadRequest);
    EXPECT_NE(r.message().find("at least 6 characters"), std::string::npos) << r.message();
  }
  EXPECT_EQ(shop_->Stock(pid_).held, before.held) << "no order was created";
  auto page = shop_->ListOrders(std::nullopt, 100, "");
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->orders.empty());
  // Six characters (of any width) is enough; no password at all is allowed too.
  EXPECT_TRUE(shop_->CreateOrder({pid_, 1, "six@example.com", "123456"}).ok());
  EXPECT_TRUE(shop_
                  ->CreateOrder({pid_, 1, "six@example.com",
                                 "\xC3\xA4\xC3\xA4\xC3\xA4\xC3\xA4\xC3\xA4\xC3\xA4"})
                  .ok());
  EXPECT_TRUE(shop_->CreateOrder({pid_, 1, "none@example.com", ""}).ok());
  EXPECT_EQ(Found("six@example.com", "123456"), 1u);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(LookupTest, TenFailuresLockTheContactRightPasswordIncludedThenLongerEachTime) {
  Order(pid_, 1, "victim@example.com", "right-password");
  Order(pid_, 1, "bystander@example.com", "other-password");
  for (int i = 0; i < 10; ++i) {
    if (i > 0) clock_.Advance(absl::Seconds(20));  // ten failures over three minutes
    ASSERT_EQ(Found("victim@example.com", "guess-" + std::to_string(i)), 0u) << i;
  }
  // Locked for 60 s: the right password is refused too (else the lock would be an oracle),
  // and the contact's spelling does not matter (the count is on the normalized contact).
  EXPECT_EQ(LockedFor("victim@example.com", "right-password"), 60);
  EXPECT_EQ(LockedFor("VICTIM@Example.COM", "right-password"), 60);
  // Another contact is not affected.
  EXPECT_EQ(Found("bystander@example.com", "other-password"), 1u);
  clock_.Advance(absl::Seconds(59));
  EXPECT_EQ(LockedFor("victim@example.com", "right-password"), 1);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Found("victim@example.com", "right-password"), 1u);
  // The next lock lasts twice as long; a success in between resets nothing.
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(Found("victim@example.com", "again-" + std::to_string(i)), 0u);
  EXPECT_EQ(LockedFor("victim@example.com", "right-password"), 120);
  clock_.Advance(absl::Seconds(120));
  EXPECT_EQ(Found("victim@example.com", "right-password"), 1u);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(LookupTest, AContactWithoutOrdersLocksTheSameWay) {
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(Found("nobody@example.com", "guess-" + std::to_string(i)), 0u);
  EXPECT_EQ(LockedFor("nobody@example.com", "guess-x"), 60);
}

TEST_F(LookupTest, KnowingOnePasswordOfAContactBuysNoGuessesAtItsOthers) {
  // Anyone may order under any contact: an attacker's own order must not reset the count.
  Order(pid_, 1, "victim@example.com", "victims-secret");
  Order(pid_, 1, "victim@example.com", "attackers-own");
  for (int i = 0; i < 9; ++i) {
    ASSERT_EQ(Found("victim@example.com", "guess-" + std::to_string(i)), 0u);
    ASSERT_EQ(Found("victim@example.com", "attackers-own"), 1u);
  }
  ASSERT_EQ(Found("victim@example.com", "guess-9"), 0u);
  EXPECT_EQ(LockedFor("victim@example.com", "attackers-own"), 60);
}

TEST_F(LookupTest, WrongTokensLockThatOrderIdsReads) {
  const OrderView o = Order(pid_, 1, "reader@example.com");
  const OrderView other = Order(pid_, 1, "reader@example.com");
  const std::string wrong(32, '0');
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(shop_->GetOrder(o.order_id, wrong).refusal(), Refusal::kOrderNotFound) << i;
  }
  auto locked = shop_->GetOrder(o.order_id, o.token);
  ASSERT_TRUE(locked.refused());
  EXPECT_EQ(locked.refusal(), Refusal::kRateLimited);
  EXPECT_EQ(locked.retry_after_seconds(), 60);
  EXPECT_TRUE(shop_->GetOrder(other.order_id, other.token).ok()) << "another order is readable";
  // An unknown id counts the same way (the answers must not tell known from unknown).
  const std::string unknown = "0123456789abcdef0123456789abcdef";
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(shop_->GetOrder(unknown, wrong).refusal(), Refusal::kOrderNotFound) << i;
  }
  EXPECT_EQ(shop_->GetOrder(unknown, wrong).refusal(), Refusal::kRateLimited);
  clock_.Advance(absl::Seconds(60));
  EXPECT_TRUE(shop_->GetOrder(o.order_id, o.token).ok());
}

TEST_F(LookupTest, AFailingLookupDoesTheSameWorkWhetherOrNotTheContactHasOrders) {
  for (int i = 0; i < 3; ++i) Order(pid_, 1, "known@example.com", "known-pw-" + std::to_string(i));
  LookupWork known, unknown, found;
  ASSERT_EQ(Found("known@example.com", "wrong-password", &known), 0u);
  ASSERT_EQ(Found("unknown@example.com", "wrong-password", &unknown), 0u);
  // The keyed work (the contact tag and the lookup tag) and the reads are the same; only
  // the index entries walked differ (a constant-time 16-byte compare each).
  EXPECT_EQ(known.tags, 2u);
  EXPECT_EQ(unknown.tags, 2u);
  EXPECT_EQ(known.order_reads, 0u);
  EXPECT_EQ(unknown.order_reads, 0u);
  EXPECT_EQ(known.index_entries, 3u);
  EXPECT_EQ(unknown.index_entries, 0u);
  // A match reads its order (and checks it against the order's own password tag).
  ASSERT_EQ(Found("known@example.com", "known-pw-1", &found), 1u);
  EXPECT_EQ(found.order_reads, 1u);
}

TEST_F(LookupTest, ContactIndexEntriesWithoutALookupTagAreStillFound) {
  // Orders indexed before lookup tags have an empty index value: the order record decides.
  const OrderView o = Order(pid_, 1, "legacy@example.com", "legacy-password");
  auto it = shop_->db()->NewIterator(storage::kCfOrderIndex);
  std::string key;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key()[0] == storage::kIdxContact) key = it->key().ToString();
  }
  ASSERT_FALSE(key.empty());
  ASSERT_EQ(it->status().ToString(), "OK");
  it.reset();
  rocksdb::WriteBatch b;
  b.Put(shop_->db()->cf(storage::kCfOrderIndex), key, rocksdb::Slice());
  ASSERT_TRUE(shop_->db()->Write(&b).ok());
  LookupWork w;
  ASSERT_EQ(Found("legacy@example.com", "legacy-password", &w), 1u);
  EXPECT_EQ(w.order_reads, 1u);
  EXPECT_EQ(Found("legacy@example.com", "wrong-password"), 0u);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(LookupTest, OffMeansNoLockout) {
  shop_.reset();
  ShopOptions o = Options();
  o.lookup_lockout.failures_max = 0;
  auto s = Shop::Open(o);
  ASSERT_TRUE(s.ok()) << s.status();
  shop_ = std::move(*s);
  for (int i = 0; i < 50; ++i)
    ASSERT_EQ(Found("any@example.com", "guess-" + std::to_string(i)), 0u);
}

// --- Idempotency-Key scope ------------------------------------------------------------------

TEST_F(LookupTest, AnIdempotencyReplayFromAnotherClientGetsNoTokenNorOrder) {
  IdempotencyKey k{"checkout-42", "fingerprint-of-the-body"};
  OrderRequest req(pid_, 1, "buyer@example.com", "", "192.0.2.1");
  auto first = shop_->CreateOrder(req, &k);
  ASSERT_TRUE(first.ok());
  const int64_t held = shop_->Stock(pid_).held;
  // The same key and body from another client: refused, nothing about the order told.
  OrderRequest thief = req;
  thief.client = "198.51.100.7";
  auto stolen = shop_->CreateOrder(thief, &k);
  ASSERT_TRUE(stolen.refused());
  EXPECT_EQ(stolen.refusal(), Refusal::kIdempotencyConflict);
  EXPECT_EQ(stolen.message().find(first->order_id), std::string::npos);
  EXPECT_EQ(stolen.message().find(first->token), std::string::npos);
  // The same key and fingerprint with another contact or password: the same refusal (the
  // shop binds them itself, whatever the caller's fingerprint covers).
  for (OrderRequest other :
       {OrderRequest(pid_, 1, "other@example.com", "", "192.0.2.1"),
        OrderRequest(pid_, 1, "buyer@example.com", "a-password", "192.0.2.1")}) {
    auto r = shop_->CreateOrder(other, &k);
    ASSERT_TRUE(r.refused());
    EXPECT_EQ(r.refusal(), Refusal::kIdempotencyConflict);
    EXPECT_EQ(r.message(), stolen.message()) << "one answer for every mismatch";
  }
  // The original client's retry still gets its 201 with the token; nothing new was created.
  auto again = shop_->CreateOrder(req, &k);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->idempotent_replay);
  EXPECT_EQ(again->order_id, first->order_id);
  EXPECT_EQ(again->token, first->token);
  EXPECT_EQ(shop_->Stock(pid_).held, held);
  Reopen();
  EXPECT_EQ(shop_->CreateOrder(req, &k)->token, first->token);
  EXPECT_EQ(shop_->CreateOrder(thief, &k).refusal(), Refusal::kIdempotencyConflict);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(LookupTest, AnIdempotencyRecordFromBeforeScopesIsReadAndNeverReplaysTheToken) {
  const OrderView o = Order(pid_, 1, "old@example.com");
  // A version 1 record, as stored before scopes: fingerprint, created_ms, oid.
  std::string oid;
  ASSERT_TRUE(ParseOrderId(o.order_id, &oid));
  std::string v1(1, '\x01');
  PutLengthPrefixed(&v1, "fingerprint");
  PutVarsint64(&v1, 1);
  PutLengthPrefixed(&v1, oid);
  IdempotencyRecord decoded;
  ASSERT_TRUE(DecodeIdempotency(v1, &decoded).ok());
  EXPECT_EQ(decoded.fingerprint, "fingerprint");
  EXPECT_TRUE(decoded.scope.empty());
  rocksdb::WriteBatch b;
  b.Put(shop_->db()->cf(storage::kCfIdempotency), IdempotencyTag(shop_->cipher(), "old-key"), v1);
  ASSERT_TRUE(shop_->db()->Write(&b).ok());
  IdempotencyKey k{"old-key", "fingerprint"};
  auto r = shop_->CreateOrder({pid_, 1, "old@example.com", ""}, &k);
  ASSERT_TRUE(r.refused());
  EXPECT_EQ(r.refusal(), Refusal::kIdempotencyConflict);
  // Collection still reads it (and collects it after 24 h).
  clock_.Advance(absl::Hours(25));
  auto collected = shop_->CollectIdempotency(absl::Hours(24));
  ASSERT_TRUE(collected.ok()) << collected.status();
  EXPECT_EQ(*collected, 1u);
}

}  // namespace
}  // namespace kv
