// Helpers for the black-box keyvend-preload tests: the tools run through the test kit
// (kit/process.h), a stopped shop to preload into, and the decrypted content of a product's pool
// (the ground truth for "no key lost, none stored twice").
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kit/files.h"
#include "kit/process.h"
#include "shop/shop.h"
#include "storage/data_dir.h"
#include "storage/schema.h"

namespace kv::preloadtest {

// Runs `args` (args[0] the binary's path) to completion with the kit's explicit
// environment (nothing of the developer's KEYVEND_* reaches the tool), at most `timeout`;
// stdout in .out and stderr in .err.
inline testing::RunResult RunProc(const std::vector<std::string>& args,
                                  std::chrono::milliseconds timeout = std::chrono::minutes(5)) {
  return testing::RunCommand(args, {.env = {}, .timeout = timeout, .merge_stderr = false});
}

// Creates a shop in `data_dir` (key file `key_file`) with product 1 and `old_keys` keys
// "OLD-<i>" imported the normal way. Returns false (after a failed assertion) on error.
inline bool MakeShop(const std::string& data_dir, const std::string& key_file, int old_keys) {
  // The umask of every keyvend binary (base/hardening.h) until the shop is closed: files
  // made with the test's umask would be made private by the tool's first open, with a
  // warning on its stderr.
  struct Umask077 {
    mode_t old = ::umask(077);
    ~Umask077() { ::umask(old); }
  } umask077;
  ShopOptions o;
  o.data_dir = data_dir;
  o.master_key_file = key_file;
  o.start_workers = false;
  o.block_cache_bytes = 8 << 20;
  auto shop = Shop::Open(o);
  EXPECT_TRUE(shop.ok()) << shop.status();
  if (!shop.ok()) return false;
  ProductSpec p;
  p.name = "preloaded";
  p.price_cents = 100;
  p.currency = "EUR";
  auto prod = (*shop)->CreateProduct(p);
  EXPECT_TRUE(prod.ok());
  EXPECT_EQ(prod->product.id, 1u);
  std::string text;
  for (int i = 0; i < old_keys; ++i) absl::StrAppend(&text, "OLD-", i, "\n");
  auto imp = (*shop)->ImportKeys(1, text, ParseOptions{});
  EXPECT_TRUE(imp.ok());
  return imp.ok() && imp->imported == static_cast<uint64_t>(old_keys);
}

// Every key in product `pid`'s pool, decrypted (each must open under its pool key), and
// the number of entries of CF key_tags. Fails the test on a key that does not decrypt or
// a text seen twice (then `*twice` counts them).
struct PoolContent {
  std::set<std::string> texts;
  size_t entries = 0;  // pool entries of the product (== texts.size() unless twice > 0)
  size_t twice = 0;
  size_t tags = 0;
};

inline PoolContent ReadPool(const std::string& data_dir, const std::string& key_file,
                            uint64_t pid) {
  PoolContent c;
  auto d = storage::OpenExistingDataDir(data_dir, key_file);
  EXPECT_TRUE(d.ok()) << d.status();
  if (!d.ok()) return c;
  auto it = d->db->NewIterator(storage::kCfPool);
  const std::string prefix = storage::U64Key(pid);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    PoolKeyRecord r;
    EXPECT_TRUE(DecodePoolKey(std::string_view(it->value().data(), it->value().size()), &r).ok());
    auto text = d->cipher->Open(r.sealed, std::string_view(it->key().data(), it->key().size()));
    EXPECT_TRUE(text.ok()) << "a pool key does not decrypt";
    if (!text.ok()) continue;
    ++c.entries;
    if (!c.texts.insert(*text).second) ++c.twice;
  }
  auto tags = d->db->NewIterator(storage::kCfKeyTags);
  for (tags->SeekToFirst(); tags->Valid(); tags->Next()) ++c.tags;
  return c;
}

}  // namespace kv::preloadtest
