// Parsing of a merchant's card-key upload (plain text, one key per line, or CSV) into the
// list of keys the shop will store plus a per-line list of rejections.
//
// One parser serves both the HTTP admin import endpoint and the offline bulk loader, so it
// is a single pass over the input that hands out std::string_views into it: there is no
// per-line heap allocation beyond the output vectors and the dedupe set. It never crashes
// on any input and never puts a key's text into a message (keys are secrets).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kv {

// Longest accepted card key, in bytes after trimming.
inline constexpr size_t kKeyBytesMax = 256;

enum class KeyFormat {
  kText,  // One key per line.
  kCsv,   // RFC 4180 CSV with a header row; the key is in the column named csv_column.
};

// Why a line (or CSV record) was not accepted. The names below are stable API: the admin
// endpoint shows them as {"line": N, "reason": "<code>"}.
enum class LineReject : uint8_t {
  kEmpty,             // Nothing left after trimming whitespace.
  kTooLong,           // More than kKeyBytesMax bytes after trimming.
  kNonPrintable,      // A byte < 0x20 or 0x7f inside the key, or invalid UTF-8.
  kDuplicateInInput,  // Byte-equal (after trimming) to a key accepted earlier in the input.
  kBadCsvRow,         // CSV record too short to reach the key column, or a malformed quote.
};

// The stable code for `r`: "empty", "too_long", "non_printable", "duplicate_in_input" or
// "bad_csv_row" ("unknown" for a value outside the enum). The returned view points to static
// storage. Thread-safe.
std::string_view LineRejectName(LineReject r);

struct ParsedKey {
  uint32_t line;          // Physical line the key's line or CSV record starts on.
  std::string_view text;  // Trimmed key; points into the input or into ParsedKeys::owned.
};

struct RejectedLine {
  uint32_t line;
  LineReject reason;
};

struct ParsedKeys {
  // Accepted keys, unique within the input, in input order.
  std::vector<ParsedKey> keys;
  // Rejected lines in line order, including duplicates within the input (kDuplicateInInput).
  std::vector<RejectedLine> rejected;
  // How many entries of `rejected` are kDuplicateInInput.
  size_t duplicates_in_input = 0;
  // Backing text for the rare keys that had to be rewritten: CSV quoted fields containing
  // escaped quotes (""), which are stored unescaped here. Some keys[i].text point into these
  // strings. std::deque never relocates its elements as it grows, and moving a ParsedKeys
  // moves the deque's storage as is, so those views stay valid for the life of this object
  // and whatever it is moved into. A *copy* of ParsedKeys still points into the original's
  // `owned`: move results, don't copy them.
  std::deque<std::string> owned;
};

struct ParseOptions {
  KeyFormat format = KeyFormat::kText;
  // CSV only: the header name of the key column, matched ASCII-case-insensitively after
  // trimming whitespace from both the header name and this value.
  std::string csv_column = "key";
  // Line number reported for the first physical line of the input (after any BOM). Line
  // numbers saturate at UINT32_MAX instead of wrapping.
  uint32_t first_line = 1;
};

// Parses `input` as opts.format and returns the accepted keys and the rejected lines.
//
// Lines end with "\n" or "\r\n". A UTF-8 BOM at the very start is skipped. A final line
// without a terminator counts; the empty string after a final newline is not a line.
// Each key is trimmed of ASCII whitespace (space, \t, \r, \v, \f) at both ends and then
// checked, in this order: empty -> kEmpty; longer than kKeyBytesMax bytes -> kTooLong;
// a byte < 0x20 or 0x7f, or invalid UTF-8 (overlong, surrogate, above U+10FFFF, truncated)
// -> kNonPrintable; byte-equal to an earlier accepted key -> kDuplicateInInput (the first
// occurrence stays accepted). Spaces inside a key are allowed.
//
// Text: every physical line is a candidate key; a blank line is kEmpty (so the merchant sees
// it), except the empty string after the final newline.
//
// CSV (RFC 4180): the first non-empty record is the header. Fields are separated by ','. A
// field may be quoted with '"' (spaces and tabs before the opening quote are ignored) and
// then may contain ',', newlines and "" for a literal quote; a '"' inside an unquoted field
// is literal. A record's line number is the physical line it starts on. Completely empty
// lines are skipped silently. A record with too few fields to reach the key column, or with
// a malformed quoted field (anything after the closing quote other than ',' or the end of
// the record), is kBadCsvRow and parsing resumes on the next physical line; an unterminated
// quote runs to the end of the input (as RFC 4180 says) and makes that record kBadCsvRow.
// The key field is then trimmed and checked as above.
//
// Returns InvalidArgument only for a whole-input problem, for CSV only: no header record,
// a malformed header, or no header column named opts.csv_column (the message names the
// column, e.g. `CSV header has no "key" column`; it never contains input text). Line-level
// problems never fail the call; they land in `rejected`. Empty text input yields no keys and
// no rejections.
//
// The result's string_views point into `input` (the caller keeps it alive and unchanged for
// as long as it uses the result) or into the result's own `owned`. Thread-safe: no shared
// state, so concurrent calls on different (or the same, read-only) inputs are fine.
absl::StatusOr<ParsedKeys> ParseKeys(std::string_view input, const ParseOptions& opts);

}  // namespace kv
