#include "preload/dedupe.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "shop/secrets.h"

namespace kv::preload {
namespace {

constexpr size_t kBuckets = 1 << 16;
// Work handed to a thread at a time, in keys, and the progress granularity.
constexpr size_t kChunkKeys = 1 << 14;
// Next() calls tried before a Seek(): a Next is far cheaper while the next stored tag is
// near, a Seek is cheaper across a long gap (input sparse against what is stored).
constexpr int kNextsBeforeSeek = 8;
// Read-ahead for the sequential pass over key_tags.
constexpr size_t kIndexReadaheadBytes = size_t{4} << 20;

uint32_t Bucket(const TagEntry& e) { return uint32_t{e.tag[0]} << 8 | e.tag[1]; }

template <typename F>
void RunThreads(int threads, F&& fn) {
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(fn, t);
  fn(0);
  for (std::thread& th : pool) th.join();
}

int Clamp(int threads) { return std::max(1, threads); }

}  // namespace

bool TagLess(const TagEntry& a, const TagEntry& b) {
  const int c = std::memcmp(a.tag.data(), b.tag.data(), a.tag.size());
  return c < 0 || (c == 0 && a.index < b.index);
}

std::vector<TagEntry> ComputeTags(const std::vector<std::string_view>& texts,
                                  const KeyCipher& cipher, int threads, Progress* progress) {
  std::vector<TagEntry> out(texts.size());
  std::atomic<size_t> next{0};
  RunThreads(Clamp(threads), [&](int) {
    for (;;) {
      const size_t begin = next.fetch_add(kChunkKeys);
      if (begin >= texts.size()) return;
      const size_t end = std::min(texts.size(), begin + kChunkKeys);
      for (size_t i = begin; i < end; ++i) {
        const std::string tag = KeyTag(cipher, texts[i]);
        std::memcpy(out[i].tag.data(), tag.data(), out[i].tag.size());
        out[i].index = static_cast<uint32_t>(i);
      }
      if (progress != nullptr) progress->Add(end - begin);
    }
  });
  return out;
}

void SortByTag(std::vector<TagEntry>* entries, int threads) {
  std::vector<TagEntry>& v = *entries;
  if (v.size() < kBuckets) {
    std::sort(v.begin(), v.end(), TagLess);
    return;
  }
  // Counting sort on the first 16 bits: stable, so each bucket stays in input order.
  std::vector<size_t> start(kBuckets + 1, 0);
  for (const TagEntry& e : v) ++start[Bucket(e) + 1];
  for (size_t b = 0; b < kBuckets; ++b) start[b + 1] += start[b];
  std::vector<TagEntry> out(v.size());
  {
    std::vector<size_t> pos(start.begin(), start.end() - 1);
    for (const TagEntry& e : v) out[pos[Bucket(e)]++] = e;
  }
  std::atomic<size_t> next{0};
  constexpr size_t kBucketsPerGrab = 256;
  RunThreads(Clamp(threads), [&](int) {
    for (;;) {
      const size_t b0 = next.fetch_add(kBucketsPerGrab);
      if (b0 >= kBuckets) return;
      for (size_t b = b0; b < std::min(kBuckets, b0 + kBucketsPerGrab); ++b) {
        std::sort(out.begin() + static_cast<ptrdiff_t>(start[b]),
                  out.begin() + static_cast<ptrdiff_t>(start[b + 1]), TagLess);
      }
    }
  });
  v.swap(out);
}

absl::Status FindStored(const storage::Db& db, const std::vector<TagEntry>& sorted, int threads,
                        std::vector<bool>* stored, Progress* progress) {
  const size_t n = sorted.size();
  // vector<bool> packs bits, so threads must not write it concurrently: each fills bytes.
  std::vector<uint8_t> hit(n, 0);
  threads = static_cast<int>(
      std::min<size_t>(static_cast<size_t>(Clamp(threads)), std::max<size_t>(1, n / kChunkKeys)));
  std::vector<absl::Status> errors(static_cast<size_t>(threads));
  RunThreads(threads, [&](int t) {
    const size_t begin = n * static_cast<size_t>(t) / static_cast<size_t>(threads);
    const size_t end = n * static_cast<size_t>(t + 1) / static_cast<size_t>(threads);
    if (begin == end) return;
    rocksdb::ReadOptions ro;
    ro.total_order_seek = true;
    ro.fill_cache = false;  // one pass: keep the cache for what the shop reads later
    ro.readahead_size = kIndexReadaheadBytes;
    std::unique_ptr<rocksdb::Iterator> it(db.raw()->NewIterator(ro, db.cf(storage::kCfKeyTags)));
    auto slice = [&](size_t k) {
      return rocksdb::Slice(reinterpret_cast<const char*>(sorted[k].tag.data()),
                            sorted[k].tag.size());
    };
    it->Seek(slice(begin));
    size_t reported = begin;
    for (size_t k = begin; k < end; ++k) {
      const rocksdb::Slice want = slice(k);
      int nexts = 0;
      while (it->Valid() && it->key().compare(want) < 0) {
        if (++nexts > kNextsBeforeSeek) {
          it->Seek(want);
          break;
        }
        it->Next();
      }
      if (!it->Valid()) break;  // past the last stored tag: the rest are new
      if (it->key() == want) hit[k] = 1;
      if (progress != nullptr && k - reported >= kChunkKeys) {
        progress->Add(k - reported);
        reported = k;
      }
    }
    if (!it->status().ok()) {
      errors[static_cast<size_t>(t)] =
          absl::UnavailableError(absl::StrCat("reading the key index: ", it->status().ToString()));
    }
    if (progress != nullptr) progress->Add(end - reported);
  });
  for (const absl::Status& s : errors) {
    if (!s.ok()) return s;
  }
  stored->assign(n, false);
  for (size_t k = 0; k < n; ++k) (*stored)[k] = hit[k] != 0;
  return absl::OkStatus();
}

absl::StatusOr<DedupeResult> Dedupe(const std::vector<InputKey>& keys, const KeyCipher& cipher,
                                    const storage::Db& db, int threads, Progress* progress) {
  DedupeResult r;
  r.verdicts.assign(keys.size(), Verdict::kFresh);
  std::vector<std::string_view> texts;
  texts.reserve(keys.size());
  for (const InputKey& k : keys) texts.push_back(k.text);
  if (progress != nullptr) progress->Phase("hashing", keys.size(), ProgressUnit::kKeys);
  std::vector<TagEntry> entries = ComputeTags(texts, cipher, threads, progress);
  texts.clear();
  texts.shrink_to_fit();
  if (progress != nullptr) progress->Phase("sorting", keys.size(), ProgressUnit::kKeys);
  SortByTag(&entries, threads);
  if (progress != nullptr) progress->Add(keys.size());

  // Keep the first of each run of equal tags (the lowest input index: TagLess breaks ties by
  // index); the others are duplicates within the input.
  size_t w = 0;
  for (size_t k = 0; k < entries.size(); ++k) {
    if (w > 0 && entries[w - 1].tag == entries[k].tag) {
      r.verdicts[entries[k].index] = Verdict::kDuplicateInInput;
      ++r.duplicate_in_input;
      continue;
    }
    entries[w++] = entries[k];
  }
  entries.resize(w);

  if (progress != nullptr) progress->Phase("deduplicating", entries.size(), ProgressUnit::kKeys);
  std::vector<bool> stored;
  absl::Status s = FindStored(db, entries, threads, &stored, progress);
  if (!s.ok()) return s;
  w = 0;
  for (size_t k = 0; k < entries.size(); ++k) {
    if (stored[k]) {
      r.verdicts[entries[k].index] = Verdict::kAlreadyStored;
      ++r.already_stored;
      continue;
    }
    entries[w++] = entries[k];
  }
  entries.resize(w);
  entries.shrink_to_fit();
  r.fresh_by_tag = std::move(entries);
  if (progress != nullptr) progress->Finish();
  return r;
}

}  // namespace kv::preload
