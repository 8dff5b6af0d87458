// keyvend-preload's dedupe: which input keys are new to the shop, by sort and merge — never
// one point read per key.
//
//  1. tag: every key's uniqueness tag (shop/secrets.h KeyTag, the HMAC the shop indexes in
//     CF key_tags), on `threads` threads;
//  2. sort (tag, input index): a counting sort on the tag's first two bytes (tags are
//     uniform), then each bucket sorted, buckets shared among the threads;
//  3. equal tags are now adjacent: all but the first in input order are duplicate_in_input
//     (across files and across parsed pieces; the parser already caught repeats within one);
//  4. merge-join the distinct tags against CF key_tags (sorted by tag too): each thread takes
//     a contiguous share of the tags and ONE iterator, and moves it forward with Next() while
//     the next stored tag is near, with Seek() past a gap (a few input keys against millions
//     stored cost a few seeks; millions against millions cost one sequential pass).
// Equal tags mean equal key text (a 128-bit HMAC: a collision is not a practical concern,
// and the shop's own uniqueness rests on the same tags).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "preload/input.h"
#include "preload/progress.h"
#include "storage/db.h"
#include "storage/key_cipher.h"

namespace kv::preload {

// A key's uniqueness tag and its position (an input index, or later a rank among the keys
// to store). 20 bytes, so ten million of them sort in memory comfortably.
struct TagEntry {
  std::array<uint8_t, 16> tag;
  uint32_t index;
};
static_assert(sizeof(TagEntry) == 20);

// Orders by tag, then index.
bool TagLess(const TagEntry& a, const TagEntry& b);

enum class Verdict : uint8_t {
  kFresh = 0,             // new to the shop and first of its text in the input
  kDuplicateInInput = 1,  // the same text came earlier in the input
  kAlreadyStored = 2,     // the shop has stocked this text before (any product)
};

struct [[nodiscard]] DedupeResult {
  std::vector<Verdict> verdicts;  // one per input key, by input index
  // The fresh keys' tags, sorted by tag, one entry per distinct text; index = input index.
  std::vector<TagEntry> fresh_by_tag;
  uint64_t duplicate_in_input = 0;
  uint64_t already_stored = 0;
};

// Tags `texts` into entries {tag, i} (i = position in `texts`), on `threads` threads.
std::vector<TagEntry> ComputeTags(const std::vector<std::string_view>& texts,
                                  const KeyCipher& cipher, int threads, Progress* progress);

// Sorts `entries` by TagLess, on `threads` threads.
void SortByTag(std::vector<TagEntry>* entries, int threads);

// For each entry of `sorted` (sorted by tag, distinct tags), sets (*stored)[k] = true when
// CF key_tags holds the entry's tag. Errors: Unavailable when reading the index fails.
[[nodiscard]] absl::Status FindStored(const storage::Db& db, const std::vector<TagEntry>& sorted,
                                      int threads, std::vector<bool>* stored, Progress* progress);

// Steps 1-4 over the accepted keys of a run. Errors: those of FindStored.
absl::StatusOr<DedupeResult> Dedupe(const std::vector<InputKey>& keys, const KeyCipher& cipher,
                                    const storage::Db& db, int threads, Progress* progress);

}  // namespace kv::preload
