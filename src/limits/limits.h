// Every fixed bound in keyvend, named once, with its unit last (TigerBeetle style).
// Configurable limits (rates, caps, timeouts) live in the config table (issue 4); these
// are the compile-time bounds the storage format and the domain rely on.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kv::limits {

// Products are addressed by a dense id 1..kProductsMax so the in-memory stock table is a
// fixed array read without a lock.
inline constexpr uint64_t kProductsMax = 65'536;
// Keys per order: an order is filled whole, in one WriteBatch, so this bounds a batch.
inline constexpr uint32_t kOrderQuantityMax = 1'000;
// Default per-product cap on quantity per order (merchant-configurable up to the above).
inline constexpr uint32_t kMaxPerOrderDefault = 10;
// Text field sizes, in bytes.
inline constexpr size_t kProductNameBytesMax = 200;
inline constexpr size_t kProductDescriptionBytesMax = 4'000;
inline constexpr size_t kContactBytesMax = 254;  // an e-mail address fits
inline constexpr size_t kQueryPasswordBytesMax = 128;
// Shortest query password accepted at order creation, in characters (UTF-8 code points);
// an empty one is allowed (the order then cannot be looked up). SPEC §4.
inline constexpr size_t kQueryPasswordCharsMin = 6;
static_assert(kQueryPasswordCharsMin * 4 <= kQueryPasswordBytesMax);
inline constexpr size_t kPaymentIdBytesMax = 128;
inline constexpr size_t kCurrencyBytes = 3;  // ISO 4217 alphabetic code
// A correctly signed notify the shop cannot use is recorded flagged "malformed" with the
// first bytes of its body (for the merchant's refund review); the rest is not kept.
inline constexpr size_t kPaymentBodyExcerptBytesMax = 1'024;
inline constexpr size_t kPaymentProblemBytesMax = 200;  // what was wrong with it
// The notify's Keyvend-Signature header: `t=<unix seconds>` and up to kNotifySignaturesMax
// `v1=<64 hex>` values (a gateway rotating its secret signs with each secret it holds).
// More v1 values, or a longer header, is an invalid signature.
inline constexpr size_t kNotifySignaturesMax = 8;
inline constexpr size_t kNotifySignatureHeaderBytesMax = 1'024;
static_assert(kNotifySignatureHeaderBytesMax >= 2 + 12 + kNotifySignaturesMax * (4 + 64),
              "the header cap must admit t=<12 digits> and every allowed v1 value");
// Money: minor units; an order total must fit comfortably in int64.
inline constexpr int64_t kPriceCentsMax = 100'000'000'000;  // 1e9 major units
static_assert(kPriceCentsMax * kOrderQuantityMax < INT64_MAX / 2);
// Keys in one import call (the HTTP endpoint; the preload tool batches its own input).
inline constexpr size_t kImportKeysMax = 1'000'000;
// Keys (accepted lines) in one keyvend-preload run: every key costs ~50 bytes of memory for
// the run (view, line, tag, verdict) on top of the mapped input, so 100M keys need ~5 GB.
// Input positions are 32-bit indexes, well above this.
inline constexpr size_t kPreloadKeysMax = 100'000'000;
static_assert(kPreloadKeysMax < (size_t{1} << 32));
// Hold timing, seconds (SPEC §3): defaults and the largest values the config accepts and
// Shop::Open allows (one bound each, so the two cannot disagree).
inline constexpr int64_t kHoldSecondsDefault = 900;
inline constexpr int64_t kHoldSecondsMax = 7 * 24 * 3600;
inline constexpr int64_t kHoldGraceSecondsDefault = 120;
inline constexpr int64_t kHoldGraceSecondsMax = 24 * 3600;
static_assert(kHoldSecondsDefault <= kHoldSecondsMax);
static_assert(kHoldGraceSecondsDefault <= kHoldGraceSecondsMax);
// Striped per-order locks: orders hashing to one stripe serialize their state changes.
inline constexpr size_t kOrderLockStripes = 4'096;
static_assert((kOrderLockStripes & (kOrderLockStripes - 1)) == 0, "power of two");
// Lookup: orders returned for one contact + password, and contact-index entries (the
// contact's newest orders with a query password) one lookup visits: the work of a lookup
// is bounded however many orders someone creates under a contact.
inline constexpr size_t kLookupOrdersMax = 100;
inline constexpr size_t kLookupIndexEntriesMax = 1'000;
static_assert(kLookupOrdersMax <= kLookupIndexEntriesMax);
// The admin token (KEYVEND_ADMIN_TOKEN), bytes: `keyvend serve` refuses to start with a
// shorter one. 32 random hex characters are 128 bits, beyond any online guessing.
inline constexpr size_t kAdminTokenBytesMin = 32;

// --- bounds the shop and the API used as bare numbers until issue 10 ---
// An Idempotency-Key header, bytes (1..this; a longer one is refused).
inline constexpr size_t kIdempotencyKeyBytesMax = 255;
// The client label an order keeps for the per-client hoarding guard, bytes (truncated).
inline constexpr size_t kOrderClientBytesMax = 64;
// The currency a payment record keeps from a gateway's notice, bytes (truncated; a valid
// one is kCurrencyBytes, the rest is kept only to show the merchant what came).
inline constexpr size_t kPaymentCurrencyBytesMax = 16;
static_assert(kPaymentCurrencyBytesMax >= kCurrencyBytes);
// The error text a failed outbound attempt leaves in its entry (and a hand-settle's
// reason), bytes (truncated).
inline constexpr size_t kDeliveryErrorBytesMax = 200;
// Admin pages: pool keys per page of GET .../keys; orders per page of GET /admin/orders
// (default and maximum of `limit`); orders per page while streaming the CSV export.
inline constexpr size_t kPoolKeysPageSize = 100;
inline constexpr int64_t kOrdersPageSizeDefault = 50;
inline constexpr int64_t kOrdersPageSizeMax = 500;
inline constexpr size_t kExportPageSize = 500;
static_assert(kOrdersPageSizeDefault >= 1 && kOrdersPageSizeDefault <= kOrdersPageSizeMax);
// The shop's worker: a pass (expiry, backorders) at least this often, milliseconds;
// idempotency records are kept at least kIdempotencyKeepSeconds and collected about every
// kIdempotencyCollectEverySeconds.
inline constexpr int64_t kWorkerPassMs = 100;
inline constexpr int64_t kIdempotencyKeepSeconds = 24 * 3600;
inline constexpr int64_t kIdempotencyCollectEverySeconds = 3600;
static_assert(kIdempotencyCollectEverySeconds <= kIdempotencyKeepSeconds);
// RocksDB's block cache when the caller names none, bytes (the config's block_cache_mb
// default is the same 64 MiB).
inline constexpr size_t kBlockCacheBytesDefault = size_t{64} << 20;

}  // namespace kv::limits
