#include "preload/dedupe.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "base/random.h"
#include "gtest/gtest.h"
#include "kit/files.h"
#include "rocksdb/write_batch.h"
#include "shop/secrets.h"
#include "storage/data_dir.h"

namespace kv::preload {
namespace {

using kv::testing::TempDir;

TagEntry Entry(std::mt19937_64& rng, uint32_t index) {
  TagEntry e;
  for (auto& b : e.tag) b = static_cast<uint8_t>(rng());
  e.index = index;
  return e;
}

// Above the radix threshold (65,536 buckets), with equal tags to test the tie-break.
TEST(SortByTag, MatchesStdSortIncludingTies) {
  std::mt19937_64 rng(7);
  std::vector<TagEntry> v;
  for (uint32_t i = 0; i < 300'000; ++i) v.push_back(Entry(rng, i));
  for (uint32_t i = 0; i < 1'000; ++i) v.push_back(TagEntry{v[i * 7].tag, 300'000 + i});
  std::shuffle(v.begin(), v.end(), rng);
  std::vector<TagEntry> want = v;
  std::sort(want.begin(), want.end(), TagLess);
  for (int threads : {1, 2, 5}) {
    std::vector<TagEntry> got = v;
    SortByTag(&got, threads);
    ASSERT_EQ(got.size(), want.size());
    for (size_t k = 0; k < got.size(); ++k) {
      ASSERT_TRUE(got[k].tag == want[k].tag && got[k].index == want[k].index)
          << "threads " << threads << " at " << k;
    }
  }
}

class FindStoredTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::DataDirOptions o;
    o.data_dir = tmp_.Sub("data");
    o.master_key_file = tmp_.Sub("key");
    o.block_cache_bytes = 8 << 20;
    auto d = storage::OpenDataDir(o, SecureRandom::Get());
    ASSERT_TRUE(d.ok()) << d.status();
    dir_ = std::move(*d);
  }

  // Stores `tags` in CF key_tags (the value does not matter to the merge).
  void Store(const std::vector<TagEntry>& tags, bool flush) {
    rocksdb::WriteBatch b;
    for (const TagEntry& e : tags) {
      b.Put(dir_.db->cf(storage::kCfKeyTags),
            rocksdb::Slice(reinterpret_cast<const char*>(e.tag.data()), e.tag.size()), "v");
    }
    ASSERT_TRUE(dir_.db->Write(&b, false).ok());
    if (flush) {
      ASSERT_TRUE(dir_.db->raw()->Flush({}, dir_.db->cf(storage::kCfKeyTags)).ok());
    }
  }

  TempDir tmp_;
  storage::OpenedDataDir dir_;
};

// The adaptive merge (Next while near, Seek across gaps) against a brute-force set, for
// sparse and dense inputs, stored tags spread over an SST and the memtable, 1..3 threads.
TEST_F(FindStoredTest, AgreesWithBruteForceForDenseAndSparseInput) {
  std::mt19937_64 rng(11);
  std::vector<TagEntry> stored;
  for (uint32_t i = 0; i < 60'000; ++i) stored.push_back(Entry(rng, i));
  Store({stored.begin(), stored.begin() + 40'000}, /*flush=*/true);
  Store({stored.begin() + 40'000, stored.end()}, /*flush=*/false);
  std::set<std::array<uint8_t, 16>> truth;
  for (const TagEntry& e : stored) truth.insert(e.tag);

  for (size_t inputs : {size_t{5}, size_t{3'000}, size_t{100'000}}) {
    std::vector<TagEntry> in;
    for (uint32_t i = 0; i < inputs; ++i) {
      // Half of them stored, half new; the sparse inputs must Seek over long gaps.
      in.push_back(i % 2 == 0 ? TagEntry{stored[rng() % stored.size()].tag, i} : Entry(rng, i));
    }
    SortByTag(&in, 1);
    in.erase(std::unique(in.begin(), in.end(),
                         [](const TagEntry& a, const TagEntry& b) { return a.tag == b.tag; }),
             in.end());
    for (int threads : {1, 3}) {
      std::vector<bool> hit;
      ASSERT_TRUE(FindStored(*dir_.db, in, threads, &hit, nullptr).ok());
      ASSERT_EQ(hit.size(), in.size());
      size_t found = 0;
      for (size_t k = 0; k < in.size(); ++k) {
        ASSERT_EQ(hit[k], truth.contains(in[k].tag)) << inputs << " inputs, entry " << k;
        found += hit[k];
      }
      EXPECT_GT(found, 0u);
      EXPECT_LT(found, in.size());
    }
  }
}

TEST_F(FindStoredTest, DedupeKeepsTheFirstOccurrenceAcrossFiles) {
  const KeyCipher& c = *dir_.cipher;
  // "OLD" is in the shop already; "B" repeats across files (file 1 line 1 is the first).
  TagEntry old;
  const std::string t = KeyTag(c, "OLD");
  std::memcpy(old.tag.data(), t.data(), old.tag.size());
  Store({old}, false);
  const std::vector<InputKey> keys = {{0, 1, "A"}, {0, 2, "B"},   {1, 1, "C"},
                                      {1, 2, "B"}, {1, 3, "OLD"}, {1, 4, "A"}};
  auto r = Dedupe(keys, c, *dir_.db, 2, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->verdicts, (std::vector<Verdict>{Verdict::kFresh, Verdict::kFresh, Verdict::kFresh,
                                               Verdict::kDuplicateInInput, Verdict::kAlreadyStored,
                                               Verdict::kDuplicateInInput}));
  EXPECT_EQ(r->duplicate_in_input, 2u);
  EXPECT_EQ(r->already_stored, 1u);
  ASSERT_EQ(r->fresh_by_tag.size(), 3u);
  std::set<uint32_t> fresh_indexes;
  for (size_t k = 0; k < r->fresh_by_tag.size(); ++k) {
    fresh_indexes.insert(r->fresh_by_tag[k].index);
    if (k > 0) {
      EXPECT_TRUE(TagLess(r->fresh_by_tag[k - 1], r->fresh_by_tag[k]));
    }
    const std::string want = KeyTag(c, keys[r->fresh_by_tag[k].index].text);
    EXPECT_EQ(0, std::memcmp(want.data(), r->fresh_by_tag[k].tag.data(), want.size()));
  }
  EXPECT_EQ(fresh_indexes, (std::set<uint32_t>{0, 1, 2}));
}

}  // namespace
}  // namespace kv::preload
