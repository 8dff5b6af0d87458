// libFuzzer target for the key-import parser (ParseKeys, .txt and .csv): tools/fuzz.sh
// builds and runs it (build-fuzz/fuzz/key_import_fuzz).
//
// Besides "never crashes", it checks the result's invariants and compares it against a
// deliberately naive reference parser (byte at a time, a std::string per field, a std::set
// for dedupe, UTF-8 checked by decoding code points) so that logic bugs surface too.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz_check.h"
#include "shop/key_import.h"

namespace kv {
namespace {

// --- reference parser ------------------------------------------------------------------------

struct RefResult {
  bool ok = true;
  std::vector<std::pair<uint32_t, std::string>> keys;
  std::vector<std::pair<uint32_t, LineReject>> rejected;
};

bool RefSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

std::string RefTrim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && RefSpace(s[b])) ++b;
  while (e > b && RefSpace(s[e - 1])) --e;
  return s.substr(b, e - b);
}

bool RefPrintableUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) return false;
      ++i;
      continue;
    }
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const unsigned char t = static_cast<unsigned char>(s[i + k]);
      if ((t & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (t & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

void RefOffer(uint32_t line, const std::string& raw, std::set<std::string>* seen, RefResult* r) {
  const std::string key = RefTrim(raw);
  if (key.empty()) {
    r->rejected.emplace_back(line, LineReject::kEmpty);
  } else if (key.size() > kKeyBytesMax) {
    r->rejected.emplace_back(line, LineReject::kTooLong);
  } else if (!RefPrintableUtf8(key)) {
    r->rejected.emplace_back(line, LineReject::kNonPrintable);
  } else if (!seen->insert(key).second) {
    r->rejected.emplace_back(line, LineReject::kDuplicateInInput);
  } else {
    r->keys.emplace_back(line, key);
  }
}

std::string StripBom(std::string_view in) {
  std::string s(in);
  if (s.compare(0, 3, "\xEF\xBB\xBF") == 0) s.erase(0, 3);
  return s;
}

RefResult RefText(std::string_view input) {
  const std::string s = StripBom(input);
  RefResult r;
  std::set<std::string> seen;
  std::string cur;
  uint32_t line = 1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n') {
      RefOffer(line++, cur, &seen, &r);
      cur.clear();
    } else {
      cur += s[i];
    }
  }
  if (!s.empty() && s.back() != '\n') RefOffer(line, cur, &seen, &r);
  return r;
}

struct RefRecord {
  uint32_t line = 0;
  bool malformed = false;
  std::vector<std::string> fields;
};

// Splits into records, skipping completely empty lines.
std::vector<RefRecord> RefCsvRecords(const std::string& s) {
  std::vector<RefRecord> out;
  const size_t n = s.size();
  size_t i = 0;
  uint32_t line = 1;
  while (i < n) {
    if (s[i] == '\n') {
      ++i, ++line;
      continue;
    }
    if (s[i] == '\r' && (i + 1 == n || s[i + 1] == '\n')) {
      i += (i + 1 == n) ? 1 : 2;
      ++line;
      continue;
    }
    RefRecord rec;
    rec.line = line;
    bool done = false;
    while (!done) {
      size_t j = i;
      while (j < n && (s[j] == ' ' || s[j] == '\t')) ++j;
      std::string f;
      if (j < n && s[j] == '"') {
        size_t k = j + 1;
        bool closed = false;
        while (k < n) {
          if (s[k] == '"') {
            if (k + 1 < n && s[k + 1] == '"') {
              f += '"';
              k += 2;
              continue;
            }
            ++k;
            closed = true;
            break;
          }
          if (s[k] == '\n') ++line;
          f += s[k++];
        }
        rec.fields.push_back(f);
        if (!closed) {
          rec.malformed = true;
          i = n;
          break;
        }
        if (k == n) {
          i = n;
          done = true;
        } else if (s[k] == ',') {
          i = k + 1;
        } else if (s[k] == '\n') {
          i = k + 1, ++line;
          done = true;
        } else if (s[k] == '\r' && (k + 1 == n || s[k + 1] == '\n')) {
          i = (k + 1 == n) ? n : k + 2;
          if (k + 1 < n) ++line;
          done = true;
        } else {
          rec.malformed = true;
          while (k < n && s[k] != '\n') ++k;
          if (k < n) ++line;
          i = (k < n) ? k + 1 : n;
          done = true;
        }
      } else {
        size_t k = i;
        while (k < n && s[k] != ',' && s[k] != '\n') f += s[k++];
        rec.fields.push_back(f);
        if (k == n) {
          i = n;
          done = true;
        } else if (s[k] == ',') {
          i = k + 1;
        } else {
          i = k + 1, ++line;
          done = true;
        }
      }
    }
    out.push_back(std::move(rec));
  }
  return out;
}

bool RefEqualsIgnoreCase(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

RefResult RefCsv(std::string_view input, const std::string& column) {
  const std::vector<RefRecord> recs = RefCsvRecords(StripBom(input));
  RefResult r;
  if (recs.empty() || recs[0].malformed) {
    r.ok = false;
    return r;
  }
  size_t key_col = SIZE_MAX;
  for (size_t c = 0; c < recs[0].fields.size(); ++c) {
    if (RefEqualsIgnoreCase(RefTrim(recs[0].fields[c]), RefTrim(column))) {
      key_col = c;
      break;
    }
  }
  if (key_col == SIZE_MAX) {
    r.ok = false;
    return r;
  }
  std::set<std::string> seen;
  for (size_t i = 1; i < recs.size(); ++i) {
    if (recs[i].malformed || recs[i].fields.size() <= key_col) {
      r.rejected.emplace_back(recs[i].line, LineReject::kBadCsvRow);
    } else {
      RefOffer(recs[i].line, recs[i].fields[key_col], &seen, &r);
    }
  }
  return r;
}

// --- checks ----------------------------------------------------------------------------------

void CheckInvariants(const ParsedKeys& p) {
  std::set<std::string_view> unique;
  for (const ParsedKey& k : p.keys) {
    FUZZ_CHECK(!k.text.empty());
    FUZZ_CHECK(k.text.size() <= kKeyBytesMax);
    for (char ch : k.text) {
      const unsigned char c = static_cast<unsigned char>(ch);
      FUZZ_CHECK(c >= 0x20 && c != 0x7f);
    }
    FUZZ_CHECK(k.text.front() != ' ' && k.text.back() != ' ');
    FUZZ_CHECK(unique.insert(k.text).second);
  }
  size_t dups = 0;
  for (const RejectedLine& r : p.rejected) {
    FUZZ_CHECK(!LineRejectName(r.reason).empty() && LineRejectName(r.reason) != "unknown");
    if (r.reason == LineReject::kDuplicateInInput) ++dups;
  }
  FUZZ_CHECK(dups == p.duplicates_in_input);
  // Keys and rejections merged by position form one strictly increasing line sequence.
  size_t ki = 0, ri = 0;
  uint32_t prev = 0;
  bool first = true;
  while (ki < p.keys.size() || ri < p.rejected.size()) {
    uint32_t line;
    if (ri == p.rejected.size() || (ki < p.keys.size() && p.keys[ki].line < p.rejected[ri].line)) {
      line = p.keys[ki++].line;
    } else {
      line = p.rejected[ri++].line;
    }
    FUZZ_CHECK(first || line > prev);
    prev = line;
    first = false;
  }
}

void CheckAgainstReference(const absl::StatusOr<ParsedKeys>& got, const RefResult& want) {
  FUZZ_CHECK(got.ok() == want.ok);
  if (!got.ok()) {
    FUZZ_CHECK(got.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  CheckInvariants(*got);
  FUZZ_CHECK(got->keys.size() == want.keys.size());
  for (size_t i = 0; i < want.keys.size(); ++i) {
    FUZZ_CHECK(got->keys[i].line == want.keys[i].first);
    FUZZ_CHECK(got->keys[i].text == want.keys[i].second);
  }
  FUZZ_CHECK(got->rejected.size() == want.rejected.size());
  for (size_t i = 0; i < want.rejected.size(); ++i) {
    FUZZ_CHECK(got->rejected[i].line == want.rejected[i].first);
    FUZZ_CHECK(got->rejected[i].reason == want.rejected[i].second);
  }
}

}  // namespace
}  // namespace kv

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kv;  // NOLINT: a fuzz entry point, not library code.
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  ParseOptions text;
  CheckAgainstReference(ParseKeys(input, text), RefText(input));

  ParseOptions csv;
  csv.format = KeyFormat::kCsv;
  CheckAgainstReference(ParseKeys(input, csv), RefCsv(input, csv.csv_column));

  // Random bytes rarely spell a header with a "key" column, so also fuzz the record parser
  // behind a fixed header, with the key in the second column.
  const std::string with_header = "id,key,note\n" + std::string(input);
  CheckAgainstReference(ParseKeys(with_header, csv), RefCsv(with_header, csv.csv_column));
  return 0;
}
