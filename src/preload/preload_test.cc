// RunPreload end to end on real data dirs: what is loaded, what is reported, how the shop
// sees the batch afterwards, backorders, refusals. Every test ends with the offline check.
#include "preload/preload.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "kit/shop_fixture.h"
#include "rocksdb/iterator.h"
#include "storage/schema.h"

namespace kv::preload {
namespace {

class PreloadTest : public kv::testing::ShopTest {
 protected:
  std::string File(const std::string& name, const std::string& text) {
    const std::string path = tmp_.Sub(name);
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  PreloadOptions Opts(uint64_t pid, std::vector<std::string> files) {
    PreloadOptions o;
    o.data_dir = tmp_.Sub("data");
    o.master_key_file = tmp_.Sub("master.key");
    o.product_id = pid;
    o.files = std::move(files);
    o.threads = 2;
    o.block_cache_bytes = 8 << 20;
    return o;
  }

  // Runs a preload on the stopped shop, then reopens it.
  absl::StatusOr<PreloadResult> Preload(const PreloadOptions& o) {
    shop_.reset();
    auto r = RunPreload(o, nullptr);
    Reopen();
    return r;
  }

  static std::vector<std::string> Lines(const PreloadResult& r) {
    std::vector<std::string> out;
    for (const ReportLine& l : r.report) out.push_back(FormatReportLine(r.files, l));
    return out;
  }

  // Entries of CF key_tags (one per key ever stored).
  size_t TagCount() {
    size_t n = 0;
    auto it = shop_->db()->NewIterator(storage::kCfKeyTags);
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++n;
    return n;
  }
};

TEST_F(PreloadTest, LoadsNewKeysReportsTheRestAndTheShopSellsThem) {
  const uint64_t pid = MakeProduct();
  Import(pid, 2, "OLD");  // OLD-0-XXXX-YYYY, OLD-1-XXXX-YYYY
  const std::string a =
      File("a.txt", "P-1\n\nP-2\nOLD-1-XXXX-YYYY\n" + std::string(257, 'z') + "\nP-1\n  P-3  \r\n");
  const std::string b = File("b.csv", "n,key\n1,P-4\n2,P-2\n3,\"bad\x7f\"\n4,P-5\n");
  auto r = Preload(Opts(pid, {a, b}));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Lines(*r),
            (std::vector<std::string>{a + ":2: empty", a + ":4: already_stored", a + ":5: too_long",
                                      a + ":6: duplicate_in_input", b + ":3: duplicate_in_input",
                                      b + ":4: non_printable"}));
  const RunCounts& c = r->counts;
  EXPECT_EQ(c.loaded, 5u);  // P-1 .. P-5
  EXPECT_EQ(c.rejected, 3u);
  EXPECT_EQ(c.duplicate_in_input, 2u);
  EXPECT_EQ(c.already_stored, 1u);
  ASSERT_EQ(c.batch_ids, std::vector<uint64_t>{2});
  EXPECT_EQ(FormatSummary(c),
            "keyvend-preload: loaded 5 keys into product " + std::to_string(pid) +
                " (batch 2); rejected 3 lines; duplicates 3 (in input 2, already stored 1)");

  // The shop sees 7 keys and sells the old ones first, then the file's in input order.
  EXPECT_EQ(shop_->Stock(pid).sellable(), 7);
  EXPECT_EQ(shop_->Stock(pid).imported, 7);
  std::vector<std::string> sold;
  for (int i = 0; i < 7; ++i) {
    OrderView o = Order(pid);
    EXPECT_EQ(Pay(o).outcome, PaymentOutcome::kApplied);
    auto got = shop_->GetOrder(o.order_id, o.token);
    ASSERT_TRUE(got.ok());
    ASSERT_EQ(got->keys.size(), 1u);
    sold.push_back(got->keys[0]);
  }
  EXPECT_EQ(sold, (std::vector<std::string>{"OLD-0-XXXX-YYYY", "OLD-1-XXXX-YYYY", "P-1", "P-2",
                                            "P-3", "P-4", "P-5"}));
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(PreloadTest, LaterImportsContinueAfterTheBatchAndSeeItsKeys) {
  const uint64_t p1 = MakeProduct();
  const uint64_t p2 = MakeProduct();
  Import(p1, 3);
  auto r = Preload(Opts(p1, {File("k.txt", "N-1\nN-2\nN-3\n")}));
  ASSERT_TRUE(r.ok()) << r.status();
  auto batches = shop_->ListBatches(p1);
  ASSERT_TRUE(batches.ok());
  ASSERT_EQ(batches->size(), 2u);
  EXPECT_EQ((*batches)[1].batch_id, 2u);
  EXPECT_EQ((*batches)[1].first_seq, 4u);
  EXPECT_EQ((*batches)[1].last_seq, 6u);
  EXPECT_EQ((*batches)[1].imported, 3u);
  // An online import (any product) refuses the preloaded keys and takes the next ids.
  auto dup = shop_->ImportKeys(p2, "N-2\n", ParseOptions{});
  ASSERT_TRUE(dup.ok());
  EXPECT_EQ(dup->imported, 0u);
  EXPECT_EQ(dup->duplicates, 1u);
  auto next = shop_->ImportKeys(p1, "N-4\n", ParseOptions{});
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->batch_id, 3u);
  batches = shop_->ListBatches(p1);
  EXPECT_EQ(batches->back().first_seq, 7u);
  // A retire of the preloaded batch takes exactly its keys out of sale.
  auto retired = shop_->RetireBatch(p1, 2);
  ASSERT_TRUE(retired.ok());
  EXPECT_EQ(retired->retired, 3u);
  EXPECT_EQ(shop_->Stock(p1).sellable(), 4);
  // A second preload of the same file loads nothing and says why, line by line.
  auto again = Preload(Opts(p1, {File("k.txt", "N-1\nN-2\nN-3\n")}));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->counts.loaded, 0u);
  EXPECT_TRUE(again->counts.batch_ids.empty());
  EXPECT_EQ(again->counts.already_stored, 3u);
  EXPECT_EQ(TagCount(), 3u + 3u + 1u);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(PreloadTest, WaitingBackordersAreServedFirstWithTheFirstKeys) {
  const uint64_t pid = MakeProduct(StockMode::kOnPayment, /*backorder=*/true);
  OrderView a = Order(pid, 2, "a@x.y");
  OrderView b = Order(pid, 1, "b@x.y");
  EXPECT_EQ(Pay(a).outcome, PaymentOutcome::kApplied);
  EXPECT_EQ(Pay(b).outcome, PaymentOutcome::kApplied);
  ASSERT_EQ(StatusOf(a), OrderStatus::kBackordered);
  ASSERT_EQ(shop_->Stock(pid).owed, 3);
  std::string text;
  for (int i = 0; i < 100; ++i) text += absl::StrCat("BO-", i, "\n");
  auto r = Preload(Opts(pid, {File("k.txt", text)}));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->counts.loaded, 100u);
  EXPECT_EQ(r->counts.backorder_keys, 3u);
  EXPECT_EQ(r->counts.backorders_served, 2u);
  EXPECT_EQ(r->counts.batch_ids, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(StatusOf(a), OrderStatus::kDelivered);
  EXPECT_EQ(StatusOf(b), OrderStatus::kDelivered);
  auto got = shop_->GetOrder(a.order_id, a.token);
  EXPECT_EQ(got->keys, (std::vector<std::string>{"BO-0", "BO-1"}));
  const StockCounts s = shop_->Stock(pid);
  EXPECT_EQ(s.owed, 0);
  EXPECT_EQ(s.pool, 97);
  EXPECT_EQ(s.sellable(), 97);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(PreloadTest, RunningShopIsRefusedWithTheAdminEndpointAndNothingChanges) {
  const uint64_t pid = MakeProduct();
  const std::string f = File("k.txt", "L-1\n");
  // shop_ stays open: the data dir is locked, as by a running server.
  auto r = RunPreload(Opts(pid, {f}), nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("shop is running"), absl::string_view::npos);
  EXPECT_NE(r.status().message().find(absl::StrCat("POST /api/v1/admin/products/", pid, "/keys")),
            absl::string_view::npos)
      << r.status();
  PreloadOptions dry = Opts(pid, {f});
  dry.dry_run = true;
  EXPECT_EQ(RunPreload(dry, nullptr).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(shop_->Stock(pid).pool, 0);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(PreloadTest, DryRunReportsLikeARealRunAndWritesNothing) {
  const uint64_t pid = MakeProduct();
  Import(pid, 1, "OLD");
  const std::string f = File("k.txt", "D-1\nD-1\nOLD-0-XXXX-YYYY\n\nD-2\n");
  PreloadOptions o = Opts(pid, {f});
  o.dry_run = true;
  auto dry = Preload(o);
  ASSERT_TRUE(dry.ok()) << dry.status();
  EXPECT_EQ(dry->counts.loaded, 2u);
  EXPECT_TRUE(dry->counts.batch_ids.empty());
  EXPECT_EQ(FormatSummary(dry->counts),
            absl::StrCat("keyvend-preload: dry run: would load 2 keys into product ", pid,
                         "; rejected 1 line; duplicates 2 (in input 1, already stored 1); "
                         "nothing was written"));
  EXPECT_EQ(shop_->Stock(pid).pool, 1);
  EXPECT_EQ(TagCount(), 1u);
  auto real = Preload(Opts(pid, {f}));
  ASSERT_TRUE(real.ok());
  EXPECT_EQ(Lines(*real), Lines(*dry));
  EXPECT_EQ(real->counts.loaded, 2u);
  EXPECT_EQ(shop_->Stock(pid).pool, 3);
  EXPECT_TRUE(CloseAndCheck().empty());
}

TEST_F(PreloadTest, BadInputUnknownProductAndWrongKeyChangeNothing) {
  const uint64_t pid = MakeProduct();
  const std::string good = File("k.txt", "G-1\n");
  const std::string nocol = File("c.csv", "code\nG-2\n");

  auto bad_csv = Preload(Opts(pid, {good, nocol}));
  EXPECT_EQ(bad_csv.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_csv.status().message().find("c.csv"), absl::string_view::npos);

  auto no_product = Preload(Opts(pid + 1, {good}));
  EXPECT_EQ(no_product.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(no_product.status().message().find("product"), absl::string_view::npos);

  PreloadOptions wrong_key = Opts(pid, {good});
  wrong_key.master_key_file = File("other.key", std::string(64, 'a') + "\n");
  ::chmod(wrong_key.master_key_file.c_str(), 0600);
  EXPECT_EQ(Preload(wrong_key).status().code(), absl::StatusCode::kPermissionDenied);

  PreloadOptions no_dir = Opts(pid, {good});
  no_dir.data_dir = tmp_.Sub("nothing-here");
  EXPECT_EQ(Preload(no_dir).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(no_dir.data_dir));

  EXPECT_EQ(shop_->Stock(pid).pool, 0);
  EXPECT_EQ(TagCount(), 0u);
  EXPECT_TRUE(CloseAndCheck().empty());
}

// Many SST files per column family, several writer threads, and a leftover temp dir from a
// run that died: the batch is still whole and exact.
TEST_F(PreloadTest, ManySstFilesAndALeftoverTempDir) {
  const uint64_t pid = MakeProduct();
  std::string text;
  for (int i = 0; i < 20'000; ++i) text += absl::StrCat("MANY-", i, "-KEY\n");
  std::filesystem::create_directories(PreloadTmpDir(tmp_.Sub("data")));
  File("data/preload-tmp/pool-0-0.sst", "garbage from a run that was killed");
  PreloadOptions o = Opts(pid, {File("k.txt", text)});
  o.threads = 3;
  o.sst_keys_max = 1'500;
  auto r = Preload(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->counts.loaded, 20'000u);
  EXPECT_FALSE(std::filesystem::exists(PreloadTmpDir(tmp_.Sub("data"))));
  EXPECT_EQ(shop_->Stock(pid).pool, 20'000);
  EXPECT_EQ(TagCount(), 20'000u);
  auto keys = shop_->ListPoolKeys(pid, 3, 19'997);
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 3u);
  EXPECT_EQ((*keys)[2].seq, 20'000u);
  EXPECT_EQ((*keys)[2].masked, "MA**********EY");  // MANY-19999-KEY, decrypted and masked
  EXPECT_TRUE(CloseAndCheck().empty());            // decrypts every key and matches every tag
}

}  // namespace
}  // namespace kv::preload
