#include "shop/key_import.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/string_view.h"

namespace kv {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// Dedupe needs only enough reservation to avoid most rehashes; sampling the head of the
// input is cheap and, unlike counting every newline, keeps the parse a single pass.
constexpr size_t kEstimateSampleBytes = size_t{64} << 10;
// A hostile upload of bare newlines would otherwise make us reserve ~20 bytes of hash slots
// per input byte before a single key is seen; past this the containers just grow.
constexpr size_t kReserveMax = size_t{1} << 22;

// Internal line numbers are 64-bit so that a long input or a large first_line cannot wrap
// around and break the "rejections are in line order" promise; we saturate on output.
uint32_t ClampLine(uint64_t line) {
  return static_cast<uint32_t>(std::min<uint64_t>(line, std::numeric_limits<uint32_t>::max()));
}

inline bool IsTrimSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

std::string_view Trim(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && IsTrimSpace(s[b])) ++b;
  while (e > b && IsTrimSpace(s[e - 1])) --e;
  return s.substr(b, e - b);
}

bool EqualsIgnoreAsciiCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]);
    unsigned char y = static_cast<unsigned char>(b[i]);
    if (x >= 'A' && x <= 'Z') x = static_cast<unsigned char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<unsigned char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// True when `s` is well-formed UTF-8 with no C0 control byte and no DEL. The multi-byte
// ranges are Unicode's table of well-formed byte sequences (Table 3-7), which excludes
// overlongs, surrogates and code points above U+10FFFF by construction.
bool IsPrintableUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* const end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) return false;
      ++p;
      continue;
    }
    size_t trail;
    unsigned char lo = 0x80;  // Allowed range of the first continuation byte.
    unsigned char hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      trail = 1;
    } else if (c == 0xE0) {
      trail = 2;
      lo = 0xA0;  // Below is an overlong.
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      trail = 2;
    } else if (c == 0xED) {
      trail = 2;
      hi = 0x9F;  // Above is a UTF-16 surrogate.
    } else if (c == 0xF0) {
      trail = 3;
      lo = 0x90;  // Below is an overlong.
    } else if (c >= 0xF1 && c <= 0xF3) {
      trail = 3;
    } else if (c == 0xF4) {
      trail = 3;
      hi = 0x8F;  // Above is beyond U+10FFFF.
    } else {
      return false;  // Stray continuation byte, C0/C1 overlong lead, or F5..FF.
    }
    if (static_cast<size_t>(end - p) <= trail) return false;  // Truncated.
    if (p[1] < lo || p[1] > hi) return false;
    for (size_t i = 2; i <= trail; ++i) {
      if (p[i] < 0x80 || p[i] > 0xBF) return false;
    }
    p += trail + 1;
  }
  return true;
}

// Returns false and sets *reason when a trimmed key is not acceptable on its own merits.
bool CheckKey(std::string_view key, LineReject* reason) {
  if (key.empty()) {
    *reason = LineReject::kEmpty;
    return false;
  }
  if (key.size() > kKeyBytesMax) {
    *reason = LineReject::kTooLong;
    return false;
  }
  if (!IsPrintableUtf8(key)) {
    *reason = LineReject::kNonPrintable;
    return false;
  }
  return true;
}

// The project's abseil predates absl::string_view being std::string_view, so spell out the
// bridge rather than rely on absl::Hash falling back to std::hash.
struct KeyHash {
  size_t operator()(std::string_view s) const {
    return absl::Hash<absl::string_view>{}(absl::string_view(s.data(), s.size()));
  }
};

size_t EstimateLines(std::string_view in) {
  if (in.empty()) return 0;
  const size_t sample = std::min(in.size(), kEstimateSampleBytes);
  const size_t newlines = static_cast<size_t>(std::count(in.begin(), in.begin() + sample, '\n'));
  // Scale in 64 bits: size * newlines can exceed 32 bits on large inputs.
  const uint64_t est = static_cast<uint64_t>(newlines) * in.size() / sample + 1;
  return static_cast<size_t>(std::min<uint64_t>(est, kReserveMax));
}

// Accumulates the outcome of every candidate key into a ParsedKeys.
class Collector {
 public:
  Collector(ParsedKeys* out, size_t estimate) : out_(out) {
    // A sampled estimate lands a hair short about half the time, and then the last push_back
    // would copy the whole vector; capacity that is reserved but never written costs no
    // physical memory, so pad it. The set needs no pad: it rounds up to a power of two.
    out_->keys.reserve(estimate + estimate / 8);
    seen_.reserve(estimate);
  }

  void Reject(uint64_t line, LineReject reason) {
    out_->rejected.push_back(RejectedLine{ClampLine(line), reason});
    if (reason == LineReject::kDuplicateInInput) ++out_->duplicates_in_input;
  }

  // `raw` is untrimmed and must outlive the result (it points into the input).
  void Offer(uint64_t line, std::string_view raw) {
    const std::string_view key = Trim(raw);
    LineReject reason;
    if (!CheckKey(key, &reason)) return Reject(line, reason);
    if (!seen_.insert(key).second) return Reject(line, LineReject::kDuplicateInInput);
    out_->keys.push_back(ParsedKey{ClampLine(line), key});
  }

  // `quoted` is the text between a CSV field's quotes and contains at least one "" pair.
  void OfferEscaped(uint64_t line, std::string_view quoted) {
    // Unescape into a reused buffer so that rejected keys cost no allocation and only keys
    // we keep get their own stable copy in `owned`.
    scratch_.clear();
    for (size_t i = 0; i < quoted.size(); ++i) {
      scratch_.push_back(quoted[i]);
      if (quoted[i] == '"') ++i;  // The scanner guarantees quotes come in pairs here.
    }
    const std::string_view key = Trim(scratch_);
    LineReject reason;
    if (!CheckKey(key, &reason)) return Reject(line, reason);
    if (seen_.contains(key)) return Reject(line, LineReject::kDuplicateInInput);
    const std::string_view stable = out_->owned.emplace_back(key);
    seen_.insert(stable);
    out_->keys.push_back(ParsedKey{ClampLine(line), stable});
  }

 private:
  ParsedKeys* out_;
  absl::flat_hash_set<std::string_view, KeyHash> seen_;
  std::string scratch_;
};

void ParseText(std::string_view in, uint64_t line, Collector* collector) {
  const char* const data = in.data();
  const size_t n = in.size();
  size_t pos = 0;
  while (pos < n) {
    const void* nl = std::memchr(data + pos, '\n', n - pos);
    const size_t end = nl != nullptr ? static_cast<size_t>(static_cast<const char*>(nl) - data) : n;
    // A "\r" before the "\n" needs no special case: it is trim whitespace.
    collector->Offer(line, in.substr(pos, end - pos));
    pos = end + 1;
    ++line;
  }
}

// --- CSV ---------------------------------------------------------------------------------

// Bytes taken by an empty line's terminator at `pos`, or 0 when the line has content.
// A lone "\r" at the very end counts as a terminator, matching "\r\n" handling elsewhere.
size_t EmptyLineTerminator(std::string_view in, size_t pos) {
  if (in[pos] == '\n') return 1;
  if (in[pos] == '\r') {
    if (pos + 1 == in.size()) return 1;
    if (in[pos + 1] == '\n') return 2;
  }
  return 0;
}

struct RecordScan {
  size_t next = 0;        // Offset just past the record (and its terminator).
  uint64_t newlines = 0;  // '\n' bytes consumed, so the caller can keep physical line count.
  size_t fields = 0;      // Fields seen (meaningless when malformed).
  bool malformed = false;
};

// Scans the CSV record starting at `pos` (which must be < in.size()), calling
// on_field(column, text, has_escapes) for each field. For a quoted field `text` is what lies
// between the quotes, still escaped when has_escapes; for an unquoted field it is the raw
// bytes up to ',' or '\n' (a trailing '\r' is left for the caller's trim). Field views point
// into `in`. A template so the per-field callback inlines into the hot loop.
template <typename OnField>
RecordScan ScanRecord(std::string_view in, size_t pos, OnField&& on_field) {
  const char* const data = in.data();
  const size_t n = in.size();
  RecordScan scan;
  size_t col = 0;
  for (;;) {
    // Merchants' tools often write `a, "b"`; skipping blanks before a quote keeps the quote
    // characters from silently becoming part of a key.
    size_t q = pos;
    while (q < n && (data[q] == ' ' || data[q] == '\t')) ++q;
    if (q < n && data[q] == '"') {
      const size_t begin = q + 1;
      size_t search = begin;
      bool escapes = false;
      size_t close;
      for (;;) {
        const void* hit = search < n ? std::memchr(data + search, '"', n - search) : nullptr;
        if (hit == nullptr) {
          // RFC 4180 gives an unterminated quote the rest of the input; there is no sound
          // place to resynchronise, so the whole tail is one bad record.
          scan.newlines += static_cast<uint64_t>(std::count(data + begin, data + n, '\n'));
          scan.next = n;
          scan.malformed = true;
          return scan;
        }
        const size_t at = static_cast<size_t>(static_cast<const char*>(hit) - data);
        if (at + 1 < n && data[at + 1] == '"') {
          escapes = true;
          search = at + 2;
          continue;
        }
        close = at;
        break;
      }
      scan.newlines += static_cast<uint64_t>(std::count(data + begin, data + close, '\n'));
      on_field(col++, in.substr(begin, close - begin), escapes);
      pos = close + 1;
      if (pos == n) break;
      if (data[pos] == ',') {
        ++pos;
        continue;
      }
      if (data[pos] == '\n') {
        ++pos;
        ++scan.newlines;
        break;
      }
      if (data[pos] == '\r' && (pos + 1 == n || data[pos + 1] == '\n')) {
        if (pos + 1 < n) ++scan.newlines;
        pos += pos + 1 == n ? 1 : 2;
        break;
      }
      // Text after the closing quote: drop the rest of this physical line and resume on the
      // next, which is the most likely start of the next well-formed record.
      const void* nl = std::memchr(data + pos, '\n', n - pos);
      if (nl != nullptr) {
        scan.next = static_cast<size_t>(static_cast<const char*>(nl) - data) + 1;
        ++scan.newlines;
      } else {
        scan.next = n;
      }
      scan.malformed = true;
      return scan;
    }
    size_t end = pos;
    while (end < n && data[end] != ',' && data[end] != '\n') ++end;
    on_field(col++, in.substr(pos, end - pos), false);
    if (end == n) {
      pos = n;
      break;
    }
    pos = end + 1;
    if (data[end] == '\n') {
      ++scan.newlines;
      break;
    }
  }
  scan.next = pos;
  scan.fields = col;
  return scan;
}

std::string ColumnNotFoundMessage(std::string_view column) {
  // The column name comes from the request, not the upload, but may still hold control
  // bytes; escape it so the message stays one clean line in logs and JSON.
  return "CSV header has no \"" +
         absl::CHexEscape(absl::string_view(column.data(), column.size())) + "\" column";
}

absl::Status ParseCsv(std::string_view in, uint64_t line, const ParseOptions& opts,
                      Collector* collector) {
  const size_t n = in.size();
  size_t pos = 0;

  // Header: the first non-empty record.
  while (pos < n) {
    const size_t skip = EmptyLineTerminator(in, pos);
    if (skip == 0) break;
    pos += skip;
    ++line;
  }
  if (pos == n) return absl::InvalidArgumentError("CSV input has no header row");

  const std::string_view wanted = Trim(opts.csv_column);
  constexpr size_t kNoColumn = std::numeric_limits<size_t>::max();
  size_t key_col = kNoColumn;
  std::string unescaped;  // Header names with "" are rare; only they pay for a copy.
  const RecordScan header =
      ScanRecord(in, pos, [&](size_t col, std::string_view text, bool escapes) {
        if (key_col != kNoColumn) return;
        if (escapes) {
          unescaped.clear();
          for (size_t i = 0; i < text.size(); ++i) {
            unescaped.push_back(text[i]);
            if (text[i] == '"') ++i;
          }
          text = unescaped;
        }
        if (EqualsIgnoreAsciiCase(Trim(text), wanted)) key_col = col;
      });
  if (header.malformed) {
    return absl::InvalidArgumentError("CSV header row has a malformed quoted field");
  }
  if (key_col == kNoColumn) return absl::InvalidArgumentError(ColumnNotFoundMessage(wanted));
  pos = header.next;
  line += header.newlines;

  while (pos < n) {
    const size_t skip = EmptyLineTerminator(in, pos);
    if (skip != 0) {
      pos += skip;
      ++line;
      continue;
    }
    std::string_view key;
    bool escapes = false;
    const RecordScan rec =
        ScanRecord(in, pos, [&](size_t col, std::string_view text, bool has_escapes) {
          if (col == key_col) {
            key = text;
            escapes = has_escapes;
          }
        });
    if (rec.malformed || rec.fields <= key_col) {
      collector->Reject(line, LineReject::kBadCsvRow);
    } else if (escapes) {
      collector->OfferEscaped(line, key);
    } else {
      collector->Offer(line, key);
    }
    pos = rec.next;
    line += rec.newlines;
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view LineRejectName(LineReject r) {
  switch (r) {
    case LineReject::kEmpty:
      return "empty";
    case LineReject::kTooLong:
      return "too_long";
    case LineReject::kNonPrintable:
      return "non_printable";
    case LineReject::kDuplicateInInput:
      return "duplicate_in_input";
    case LineReject::kBadCsvRow:
      return "bad_csv_row";
  }
  return "unknown";
}

absl::StatusOr<ParsedKeys> ParseKeys(std::string_view input, const ParseOptions& opts) {
  if (input.substr(0, kBom.size()) == kBom) input.remove_prefix(kBom.size());
  ParsedKeys out;
  Collector collector(&out, EstimateLines(input));
  if (opts.format == KeyFormat::kCsv) {
    absl::Status status = ParseCsv(input, opts.first_line, opts, &collector);
    if (!status.ok()) return status;
  } else {
    ParseText(input, opts.first_line, &collector);
  }
  return out;
}

}  // namespace kv
