// `keyvend check` as a black box: the real binary, exit codes 0 / 1 / 2.
#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <vector>

#include "base/random.h"
#include "gtest/gtest.h"
#include "kit/files.h"
#include "kit/process.h"
#include "shop/shop.h"
#include "storage/counter_merge.h"
#include "storage/data_dir.h"
#include "storage/master_key.h"

namespace kv {
namespace {

struct CliRun {
  int code;
  std::string out;
};

// `keyvend check ARGS` through the test kit: its own environment (nothing of ours named
// KEYVEND_*), stdout and stderr together.
CliRun Check(std::vector<std::string> args) {
  args.insert(args.begin(), {KEYVEND_BIN, "check"});
  const testing::RunResult r = testing::RunCommand(args);
  return {r.exit_code, r.out};
}

class CheckCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ShopOptions o;
    o.data_dir = data_;
    o.master_key_file = key_;
    o.start_workers = false;
    auto shop = Shop::Open(o);
    ASSERT_TRUE(shop.ok()) << shop.status();
    ProductSpec p;
    p.name = "card";
    p.price_cents = 100;
    p.currency = "EUR";
    const uint64_t pid = (*shop)->CreateProduct(p)->product.id;
    ASSERT_TRUE((*shop)->ImportKeys(pid, "SECRET-AAA\nSECRET-BBB\nSECRET-CCC\n", {}).ok());
    auto order = (*shop)->CreateOrder({pid, 2, "a@b.c", ""});
    ASSERT_TRUE(order.ok());
    ASSERT_TRUE((*shop)->ApplyPayment({order->order_id, "pay-1", 200, "EUR"}).ok());
    ASSERT_TRUE((*shop)->CreateOrder({pid, 1, "c@d.e", ""}).ok());  // an open hold
  }
  std::vector<std::string> Args() const { return {"--data-dir", data_, "--master-key-file", key_}; }

  testing::TempDir tmp_;
  std::string data_ = tmp_.Sub("data");
  std::string key_ = tmp_.Sub("master.key");
};

TEST_F(CheckCli, HealthyShopExitsZero) {
  CliRun r = Check(Args());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("keyvend check: OK"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("SECRET"), std::string::npos);
}

TEST_F(CheckCli, ViolationExitsOneAndNamesIt) {
  {
    storage::DataDirOptions o{data_, key_, false};
    auto d = storage::OpenDataDir(o, SecureRandom::Get());
    ASSERT_TRUE(d.ok());
    rocksdb::WriteBatch b;
    b.Merge(d->db->cf(storage::kCfCounters), storage::CounterKey(1, storage::CounterKind::kPool),
            storage::EncodeCounter(5));
    ASSERT_TRUE(d->db->Write(&b).ok());
  }
  CliRun r = Check(Args());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("VIOLATION: product 1: counter pool is 6 but a recount gives 1"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("SECRET"), std::string::npos);
}

TEST_F(CheckCli, CannotRunExitsTwo) {
  {  // locked: the shop is open in this process
    storage::DataDirOptions o{data_, key_, false};
    auto d = storage::OpenDataDir(o, SecureRandom::Get());
    ASSERT_TRUE(d.ok());
    CliRun r = Check(Args());
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("locked"), std::string::npos) << r.out;
  }
  const std::string other = tmp_.Sub("other.key");
  ASSERT_TRUE(CreateMasterKeyFile(other, SecureRandom::Get()).ok());
  CliRun wrong = Check({"--data-dir", data_, "--master-key-file", other});
  EXPECT_EQ(wrong.code, 2) << wrong.out;
  EXPECT_NE(wrong.out.find("wrong master key"), std::string::npos) << wrong.out;
  CliRun missing = Check({"--data-dir", tmp_.Sub("nothing"), "--master-key-file", key_});
  EXPECT_EQ(missing.code, 2) << missing.out;
  CliRun usage = Check({"--bogus"});
  EXPECT_EQ(usage.code, 2);
  // The offline tools' shared parser (base/cli_flags.h) and its message.
  EXPECT_NE(usage.out.find("keyvend check: unknown option '--bogus'"), std::string::npos)
      << usage.out;
  CliRun help = Check({"--help"});
  EXPECT_EQ(help.code, 0) << help.out;
  EXPECT_NE(help.out.find("usage: keyvend"), std::string::npos) << help.out;
  // The default key file is DIR.master-key beside the data dir.
  CliRun dflt = Check({"--data-dir", data_});
  EXPECT_EQ(dflt.code, 2) << dflt.out;  // no such file: refuses, creates nothing
  FILE* f = fopen((data_ + ".master-key").c_str(), "r");
  EXPECT_EQ(f, nullptr);
  if (f) fclose(f);
}

}  // namespace
}  // namespace kv
