// Memtable insert hints (issue 11): which leading bytes of a key name the place in a column
// family's memtable where the next key of that kind will land.
//
// RocksDB's skiplist memtable, given a prefix extractor
// (ColumnFamilyOptions::memtable_insert_with_hint_prefix_extractor), keeps one insert
// position per prefix and starts the next insert with that prefix from there, walking up
// only as many levels as separate the two keys. Without it every insert that is not exactly
// after the previous one searches from the top: at 64 connections that search was the
// committer's largest cost (a new order's id is time-ordered but its 80 random bits put it
// anywhere among the orders of the same millisecond). Hints change where an insert starts
// looking, never where the key goes.
//
// The prefixes (one hint each, ~250 bytes per prefix per memtable, so every prefix set is
// bounded):
//   orders, outbound, pay_attempts  1 byte   keys lead with a time-ordered order id
//   delivery_log                    1 byte   a u64 sequence number
//   order_index 'e' / 's' / 'b'     1 / 2 / 9 bytes: expiry time / status then creation time /
//                                   product then log sequence; 'c' (a contact's tag: random,
//                                   one hint per buyer would be unbounded) takes no hint
//   pool                            8 bytes  the product id (at most limits::kProductsMax)
// Every other column family (random keys: payments, key_tags, idempotency; a few hot keys:
// counters; rare writes: meta, products, batches) gets no extractor.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "rocksdb/slice_transform.h"
#include "storage/schema.h"

namespace kv::storage {

// How many leading bytes of `key` (a key of column family `cf`) name its insert hint; 0 =
// no hint for this key.
size_t MemtableHintPrefixBytes(Cf cf, std::string_view key);

// The extractor for column family `cf` (nullptr when none of its keys takes a hint).
std::shared_ptr<const rocksdb::SliceTransform> MemtableHintExtractor(Cf cf);

}  // namespace kv::storage
