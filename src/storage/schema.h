// The on-disk schema of a keyvend data dir, written down once. ARCHITECTURE.md repeats the
// grammar in prose; this comment and the key builders below are the authority.
//
// One RocksDB database; one column family per kind of record. Integers inside KEYS are
// fixed-width big-endian (byte order = numeric order). VALUES start with a one-byte record
// format version and are encoded by shop/records.cc (varints, length-prefixed strings).
// Every key shape below has one builder and one parser in this header (`PoolKey` /
// `ParsePoolKey`, ...), LevelDB's AppendInternalKey/ParseInternalKey pair: no reader
// decodes a key by hand, so sizes and offsets are written here only.
//
//   pid   := u64 BE            product id, dense 1..limits::kProductsMax
//   oid   := 16 bytes          order id: u48 BE creation ms, then 80 random bits (NewOrderId;
//                                ids from before issue 11 are 16 random bytes); 32 hex chars
//   seq   := u64 BE            card-key sequence number within its product, never reused
//   tag   := 16 bytes          HMAC-SHA256(uniq subkey, ...) truncated (storage/key_cipher.h)
//   ms    := u64 BE            Unix milliseconds
//
//   CF "meta"        "schema_version"          -> u32 BE            (kSchemaVersion)
//                    "key_check"               -> 32 bytes          (KeyCipher::KeyCheckValue)
//                    "order_counts"            -> u32 BE 1          the 'o' counters below are
//                                                 complete (absent: a dir written before them;
//                                                 Shop::Open counts the order index once and
//                                                 writes the counts and this key in one synced
//                                                 batch, before anything else writes)
//   CF "products"    pid                        -> ProductRecord (never deleted; max+1 is
//                                                 the next id)
//   CF "counters"    pid counter_kind(u8)       -> int64 LE; written ONLY via Merge with the
//                                                 "kv.int64add" operator (counter_merge.h)
//                    'o' status(u8)             -> int64 LE: orders in that OrderStatus (= its
//                                                 'e' or 's' index entries). Merged in the batch
//                                                 that writes the order (Shop::Impl::PutOrder);
//                                                 Put only by the one-time count at open. 2
//                                                 bytes, never a pid key's 9: ParseCounterKey
//                                                 refuses it, ParseOrderCountKey takes it
//   CF "pool"        pid seq                    -> PoolKeyRecord (batch id, sealed key): keys
//                                                 that can still be sold. Leaving the pool is a
//                                                 Delete in the same batch that gives the key
//                                                 to an order or retires it.
//   CF "key_tags"    tag(key text)              -> pid seq      every key ever stored; never
//                                                 deleted: a code is stocked once, shop-wide
//   CF "batches"     pid batch_id(u64 BE)       -> BatchRecord (never deleted; the highest
//                                                 last_seq gives the next free seq, the
//                                                 highest batch_id the next batch id)
//   CF "orders"      oid                        -> OrderRecord (delivered keys stay sealed
//                                                 inside the order record)
//   CF "order_index" 'c' tag(contact) ms oid    -> tag(lookup) | ""   lookup by contact (only
//                                                 orders created with a query password); the
//                                                 value is LookupTag(tag(contact), password)
//                                                 (shop/secrets.h), "" in entries written
//                                                 before lookup tags (the order decides)
//                    'e' ms(expires_at) oid     -> ""   pending_payment orders, by expiry
//                    's' status(u8) ms(created) oid -> "" every other order, by status then
//                                                 age (exactly one of 'e'/'s' per order)
//                    'b' pid log_seq(u64 BE)    -> oid  backorder queue per product (FIFO)
//   CF "payments"    payment_id (bytes)         -> PaymentRecord, exactly once per id. The
//                                                 id is the gateway's payment_id, or, for a
//                                                 signed notice without a usable one,
//                                                 "sha256:" + hex SHA-256(raw body). Record
//                                                 version 1; version 2 (a "malformed" notice)
//                                                 appends problem, body size, body excerpt
//   CF "delivery_log" log_seq(u64 BE)           -> DeliveryEntry: unfinished work only, i.e.
//                                                 a backorder (state backordered) from the
//                                                 payment's batch until the batch that
//                                                 serves or refunds it deletes it (so seqs
//                                                 restart above the highest live entry
//                                                 after a restart). States pending/failed
//                                                 (a write-ahead delivery; no release wrote
//                                                 one) still decode; Shop::Open refuses a
//                                                 dir holding one, `keyvend check` names it
//   CF "idempotency" tag(Idempotency-Key)       -> IdempotencyRecord: version 2 = scope
//                                                 (tag of contact, query password, client
//                                                 and body fingerprint), created_ms, oid;
//                                                 version 1 (still read, never replayed) =
//                                                 body fingerprint, created_ms, oid. Written
//                                                 in the batch that creates the order;
//                                                 collected >= 24 h
//   CF "pay_attempts" oid gateway(name bytes)    -> PayAttemptRecord (version 1: method, ref,
//                                                 started_ms): a buyer started paying the
//                                                 order at that gateway (GET /pay/{id}/{gw});
//                                                 written synced before the redirect, read by
//                                                 the reconciler at open, deleted once the
//                                                 order left pending/expired or the
//                                                 reconcile window passed (src/pay)
//   CF "outbound"    oid kind(u8) status(u8)    -> OutboundRecord (version 1: state, attempts,
//                                                 created_ms, next_attempt_ms, last_error):
//                                                 the delivery log's outbound work (issue 14),
//                                                 one merchant webhook event (kind 1) or buyer
//                                                 mail (kind 2) caused by the order entering
//                                                 `status`. Put in the batch that writes that
//                                                 status change (Shop::Impl::PutOrder); deleted
//                                                 (synced) once sent or settled by hand; kept
//                                                 as "failed" after the attempts. An order
//                                                 enters each status at most once, so the key
//                                                 names one event for ever (its event id is
//                                                 "evt_" hex(oid) "_" status name)
//
// Version history: 1 = first release. 2 (issue 9) = 1 plus payment records version 2 (only
// "malformed" records are written as 2), idempotency records version 2 (scoped) and values
// for contact-index entries; every version-1 form is still read. A version-1 dir is upgraded
// on open by stamping version 2 (storage/db.cc; nothing else is rewritten), so an older
// binary refuses it as a whole, naming both versions, rather than failing on one record.
// 3 (issue 12) = 2 plus the 'o' orders-per-status counts in CF counters; a version-2 dir is
// upgraded by stamping version 3, and the shop counts the index once at its next open (meta
// "order_counts" marks it done), so a version-2 binary refuses the dir as a whole instead of
// writing orders it would not count.
// 4 (issue 13) = 3 plus CF "pay_attempts"; a version-3 dir is upgraded by stamping version 4
// (RocksDB creates the new, empty CF at open), so a version-3 binary, which would not know
// the CF, refuses the dir as a whole.
// 5 (issue 14) = 4 plus CF "outbound"; upgraded like 3 -> 4 (the CF is created empty, the
// version stamped), so a version-4 binary, which would neither know the CF nor send what
// waits in it, refuses the dir as a whole.
// A reader accepts the record versions it knows and refuses any other (DataLoss), so a
// record is never misread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/coding.h"
#include "base/random.h"

namespace kv::storage {

inline constexpr uint32_t kSchemaVersion = 5;

enum Cf : int {
  kCfDefault = 0,  // required by RocksDB; unused
  kCfMeta,
  kCfProducts,
  kCfCounters,
  kCfPool,
  kCfKeyTags,
  kCfBatches,
  kCfOrders,
  kCfOrderIndex,
  kCfPayments,
  kCfDeliveryLog,
  kCfIdempotency,
  kCfPayAttempts,
  kCfOutbound,
  kCfCount
};

// Column family names, indexed by Cf.
inline constexpr const char* kCfNames[kCfCount] = {
    "default",      "meta",        "products",     "counters",    "pool",
    "key_tags",     "batches",     "orders",       "order_index", "payments",
    "delivery_log", "idempotency", "pay_attempts", "outbound"};

// Meta keys.
inline constexpr std::string_view kMetaSchemaVersion = "schema_version";
inline constexpr std::string_view kMetaKeyCheck = "key_check";
inline constexpr std::string_view kMetaOrderCounts = "order_counts";
inline constexpr uint32_t kOrderCountsVersion = 1;  // the value of kMetaOrderCounts

// Counter kinds (second part of a "counters" key). Values are part of the format.
enum class CounterKind : uint8_t {
  kPool = 1,       // keys in the pool (sellable or held)
  kHeld = 2,       // keys held by open reserve-mode orders
  kOwed = 3,       // keys owed to backordered orders
  kDelivered = 4,  // keys ever delivered (cumulative)
  kImported = 5,   // keys ever imported (cumulative)
  kRetired = 6,    // keys ever retired (cumulative)
};
inline constexpr CounterKind kAllCounterKinds[] = {CounterKind::kPool,     CounterKind::kHeld,
                                                   CounterKind::kOwed,     CounterKind::kDelivered,
                                                   CounterKind::kImported, CounterKind::kRetired};

// Order-index key prefixes.
inline constexpr char kIdxContact = 'c';
inline constexpr char kIdxExpiry = 'e';
inline constexpr char kIdxStatus = 's';
inline constexpr char kIdxBackorder = 'b';

inline constexpr size_t kOrderIdBytes = 16;
inline constexpr size_t kOrderIdTimeBytes = 6;  // then kOrderIdBytes - 6 = 10 random bytes

// A new order id: the creation time in Unix ms (48 bits, big-endian) and 80 random bits,
// the layout of a UUIDv7. Unguessable by its 80 random bits (and reading an order needs its
// token anyway); time-ordered so that the order record's key lands next to the previous
// one in RocksDB's memtable skiplist (a random 16-byte key made each insert search from the
// top: the largest cost of the committer thread, issue 11). Ids written before this
// layout (16 random bytes) are ids like any other: nothing decodes the time back.
inline std::string NewOrderId(int64_t created_ms, Random& random) {
  std::string oid(kOrderIdBytes, '\0');
  const uint64_t ms = static_cast<uint64_t>(created_ms < 0 ? 0 : created_ms);
  for (size_t i = 0; i < kOrderIdTimeBytes; ++i) {
    oid[i] = static_cast<char>(ms >> (8 * (kOrderIdTimeBytes - 1 - i)));
  }
  random.Fill(reinterpret_cast<uint8_t*>(oid.data()) + kOrderIdTimeBytes,
              kOrderIdBytes - kOrderIdTimeBytes);
  return oid;
}
inline constexpr size_t kTagBytes = 16;

// --- the key codec ------------------------------------------------------------------------
// Each builder has its parser beside it. A parser takes a whole key and returns its parts,
// or std::nullopt when the key does not have the builder's exact shape (wrong size, wrong
// index prefix, unknown counter kind); a caller treats that as DataLoss. Parts that are
// bytes (oid, tag) are views into the key given and live as long as it.

// Exact key sizes, bytes.
inline constexpr size_t kU64KeyBytes = 8;             // pid; log_seq
inline constexpr size_t kCounterKeyBytes = 8 + 1;     // pid kind
inline constexpr size_t kOrderCountKeyBytes = 1 + 1;  // 'o' status
inline constexpr size_t kPoolKeyBytes = 8 + 8;        // pid seq; pid batch_id
inline constexpr size_t kContactIndexKeyBytes = 1 + kTagBytes + 8 + kOrderIdBytes;
inline constexpr size_t kExpiryIndexKeyBytes = 1 + 8 + kOrderIdBytes;
inline constexpr size_t kStatusIndexKeyBytes = 1 + 1 + 8 + kOrderIdBytes;
inline constexpr size_t kBackorderIndexKeyBytes = 1 + 8 + 8;

// CF "products" (pid) and CF "delivery_log" (log_seq).
inline std::string U64Key(uint64_t v) {
  std::string k;
  PutFixed64BE(&k, v);
  return k;
}
inline std::optional<uint64_t> ParseU64Key(std::string_view k) {
  if (k.size() != kU64KeyBytes) return std::nullopt;
  return DecodeFixed64BE(k.data());
}

// CF "counters".
inline std::string CounterKey(uint64_t pid, CounterKind kind) {
  std::string k = U64Key(pid);
  k.push_back(static_cast<char>(kind));
  return k;
}
struct CounterKeyParts {
  uint64_t pid;
  CounterKind kind;  // one of kAllCounterKinds
};
inline std::optional<CounterKeyParts> ParseCounterKey(std::string_view k) {
  if (k.size() != kCounterKeyBytes) return std::nullopt;
  const auto kind = static_cast<CounterKind>(static_cast<uint8_t>(k[8]));
  for (CounterKind known : kAllCounterKinds) {
    if (kind == known) return CounterKeyParts{DecodeFixed64BE(k.data()), kind};
  }
  return std::nullopt;
}

// CF "counters", per-status order counts: a length no CounterKey has.
inline constexpr char kOrderCountPrefix = 'o';
inline std::string OrderCountKey(uint8_t status) {
  std::string k(1, kOrderCountPrefix);
  k.push_back(static_cast<char>(status));
  return k;
}
// The status byte (not checked against OrderStatus: shop/records.h decides).
inline std::optional<uint8_t> ParseOrderCountKey(std::string_view k) {
  if (k.size() != kOrderCountKeyBytes || k[0] != kOrderCountPrefix) return std::nullopt;
  return static_cast<uint8_t>(k[1]);
}

// CF "pool". A pooled key's ciphertext is sealed with this key as its AAD
// (KeyCipher::SealPoolKey / OpenPoolKey), and CF "key_tags" stores it as its value.
inline std::string PoolKey(uint64_t pid, uint64_t seq) {
  std::string k = U64Key(pid);
  PutFixed64BE(&k, seq);
  return k;
}
struct PoolKeyParts {
  uint64_t pid;
  uint64_t seq;
};
inline std::optional<PoolKeyParts> ParsePoolKey(std::string_view k) {
  if (k.size() != kPoolKeyBytes) return std::nullopt;
  return PoolKeyParts{DecodeFixed64BE(k.data()), DecodeFixed64BE(k.data() + 8)};
}

// CF "batches": the pool key's shape with the batch id in place of the seq.
inline std::string BatchKey(uint64_t pid, uint64_t batch_id) { return PoolKey(pid, batch_id); }
struct BatchKeyParts {
  uint64_t pid;
  uint64_t batch_id;
};
inline std::optional<BatchKeyParts> ParseBatchKey(std::string_view k) {
  auto p = ParsePoolKey(k);
  if (!p) return std::nullopt;
  return BatchKeyParts{p->pid, p->seq};
}

// CF "order_index", 'c' entries. ContactIndexPrefix: every entry of one contact.
inline std::string ContactIndexPrefix(std::string_view contact_tag) {
  std::string k(1, kIdxContact);
  k.append(contact_tag);
  return k;
}
inline std::string ContactIndexKey(std::string_view contact_tag, uint64_t created_ms,
                                   std::string_view oid) {
  std::string k = ContactIndexPrefix(contact_tag);
  PutFixed64BE(&k, created_ms);
  k.append(oid);
  return k;
}
struct ContactIndexKeyParts {
  std::string_view contact_tag;  // kTagBytes
  uint64_t created_ms;
  std::string_view oid;  // kOrderIdBytes
};
inline std::optional<ContactIndexKeyParts> ParseContactIndexKey(std::string_view k) {
  if (k.size() != kContactIndexKeyBytes || k[0] != kIdxContact) return std::nullopt;
  return ContactIndexKeyParts{k.substr(1, kTagBytes), DecodeFixed64BE(k.data() + 1 + kTagBytes),
                              k.substr(1 + kTagBytes + 8)};
}

// CF "order_index", 'e' entries.
inline std::string ExpiryIndexKey(uint64_t expires_ms, std::string_view oid) {
  std::string k(1, kIdxExpiry);
  PutFixed64BE(&k, expires_ms);
  k.append(oid);
  return k;
}
struct ExpiryIndexKeyParts {
  uint64_t expires_ms;
  std::string_view oid;  // kOrderIdBytes
};
inline std::optional<ExpiryIndexKeyParts> ParseExpiryIndexKey(std::string_view k) {
  if (k.size() != kExpiryIndexKeyBytes || k[0] != kIdxExpiry) return std::nullopt;
  return ExpiryIndexKeyParts{DecodeFixed64BE(k.data() + 1), k.substr(1 + 8)};
}

// CF "order_index", 's' entries. StatusIndexPrefix: every entry of one status.
inline std::string StatusIndexPrefix(uint8_t status) {
  std::string k(1, kIdxStatus);
  k.push_back(static_cast<char>(status));
  return k;
}
inline std::string StatusIndexKey(uint8_t status, uint64_t created_ms, std::string_view oid) {
  std::string k = StatusIndexPrefix(status);
  PutFixed64BE(&k, created_ms);
  k.append(oid);
  return k;
}
struct StatusIndexKeyParts {
  uint8_t status;  // not checked against OrderStatus (shop/records.h decides)
  uint64_t created_ms;
  std::string_view oid;  // kOrderIdBytes
};
inline std::optional<StatusIndexKeyParts> ParseStatusIndexKey(std::string_view k) {
  if (k.size() != kStatusIndexKeyBytes || k[0] != kIdxStatus) return std::nullopt;
  return StatusIndexKeyParts{static_cast<uint8_t>(k[1]), DecodeFixed64BE(k.data() + 2),
                             k.substr(2 + 8)};
}

// CF "order_index", 'b' entries.
inline std::string BackorderIndexKey(uint64_t pid, uint64_t log_seq) {
  std::string k(1, kIdxBackorder);
  PutFixed64BE(&k, pid);
  PutFixed64BE(&k, log_seq);
  return k;
}
struct BackorderIndexKeyParts {
  uint64_t pid;
  uint64_t log_seq;
};
inline std::optional<BackorderIndexKeyParts> ParseBackorderIndexKey(std::string_view k) {
  if (k.size() != kBackorderIndexKeyBytes || k[0] != kIdxBackorder) return std::nullopt;
  return BackorderIndexKeyParts{DecodeFixed64BE(k.data() + 1), DecodeFixed64BE(k.data() + 9)};
}

// CF "pay_attempts": oid then the gateway's name (1..kGatewayNameBytesMax bytes of
// [a-z0-9_]). PayAttemptPrefix: every attempt of one order.
inline constexpr size_t kGatewayNameBytesMax = 32;
inline std::string PayAttemptPrefix(std::string_view oid) { return std::string(oid); }
inline std::string PayAttemptKey(std::string_view oid, std::string_view gateway) {
  std::string k(oid);
  k.append(gateway);
  return k;
}
struct PayAttemptKeyParts {
  std::string_view oid;      // kOrderIdBytes
  std::string_view gateway;  // 1..kGatewayNameBytesMax of [a-z0-9_]
};
inline std::optional<PayAttemptKeyParts> ParsePayAttemptKey(std::string_view k) {
  if (k.size() <= kOrderIdBytes || k.size() > kOrderIdBytes + kGatewayNameBytesMax) {
    return std::nullopt;
  }
  const std::string_view gw = k.substr(kOrderIdBytes);
  for (char c : gw) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return std::nullopt;
  }
  return PayAttemptKeyParts{k.substr(0, kOrderIdBytes), gw};
}

// CF "outbound": oid, kind (1 webhook, 2 mail), the order status the event is about.
// OutboundPrefix: every outbound entry of one order.
inline constexpr size_t kOutboundKeyBytes = kOrderIdBytes + 2;
inline std::string OutboundPrefix(std::string_view oid) { return std::string(oid); }
inline std::string OutboundKey(std::string_view oid, uint8_t kind, uint8_t status) {
  std::string k(oid);
  k.push_back(static_cast<char>(kind));
  k.push_back(static_cast<char>(status));
  return k;
}
struct OutboundKeyParts {
  std::string_view oid;  // kOrderIdBytes
  uint8_t kind;
  uint8_t status;
};
inline std::optional<OutboundKeyParts> ParseOutboundKey(std::string_view k) {
  if (k.size() != kOutboundKeyBytes) return std::nullopt;
  return OutboundKeyParts{k.substr(0, kOrderIdBytes), static_cast<uint8_t>(k[kOrderIdBytes]),
                          static_cast<uint8_t>(k[kOrderIdBytes + 1])};
}

}  // namespace kv::storage
