#include "outbound/mail_message.h"

#include <openssl/evp.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/utf8.h"

namespace kv::outbound {
namespace {

// 36 bytes of base64 input are 48 characters: "=?UTF-8?B?" + 48 + "?=" = 60, so that even
// the first word after "Subject: " keeps its line within RFC 2047's 76 characters.
constexpr size_t kWordInputBytesMax = 36;
constexpr size_t kWordCharsMax = 10 + 4 * kWordInputBytesMax / 3 + 2;
static_assert(kWordCharsMax <= 75 && sizeof("Subject: ") - 1 + kWordCharsMax <= 76);
// A plain-ASCII subject is written as is up to this length (RFC 5322 allows 998 per line).
constexpr size_t kPlainSubjectBytesMax = 200;
// Base64 body lines (RFC 2045: at most 76 characters).
constexpr size_t kBodyLineChars = 76;
static_assert(kBodyLineChars % 4 == 0);

std::string Base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  if (in.empty()) return "";
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

bool IsAtext(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+/=?^_`{|}~-").find(c) != std::string_view::npos;
}

bool IsValidLocalPart(std::string_view s) {
  if (s.empty() || s.size() > 64 || s.front() == '.' || s.back() == '.') return false;
  char prev = 0;
  for (char c : s) {
    if (c == '.' && prev == '.') return false;
    if (c != '.' && !IsAtext(c)) return false;
    prev = c;
  }
  return true;
}

bool IsValidHostName(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  const std::vector<std::string> labels = absl::StrSplit(std::string(s), '.');
  if (labels.size() < 2) return false;
  for (const std::string& l : labels) {
    if (l.empty() || l.size() > 63 || l.front() == '-' || l.back() == '-') return false;
    for (char c : l) {
      const bool ok =
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) return false;
    }
  }
  return true;
}

// A control character (C0, DEL; C1 as UTF-8 U+0080..U+009F). `allow_tab_newline`: for the
// body, where TAB, CR and LF are text.
bool HasControl(std::string_view s, bool allow_tab_newline) {
  while (!s.empty()) {
    char32_t cp = 0;
    const size_t n = Utf8SequenceLength(s, &cp);
    if (n == 0) return true;  // malformed: reported as such by the caller's UTF-8 check first
    s.remove_prefix(n);
    if (allow_tab_newline && (cp == '\t' || cp == '\r' || cp == '\n')) continue;
    if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f)) return true;
  }
  return false;
}

bool IsPlainAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

bool IsValidId(std::string_view s) {
  return !s.empty() && s.size() <= kMailIdBytesMax && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

absl::Status CheckText(std::string_view field, std::string_view s, size_t max_bytes) {
  if (s.size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("mail ", std::string(field), ": longer than ", max_bytes, " bytes"));
  }
  if (!IsValidUtf8(s)) {
    return absl::InvalidArgumentError(absl::StrCat("mail ", std::string(field), ": not UTF-8"));
  }
  if (HasControl(s, false)) {
    return absl::InvalidArgumentError(
        absl::StrCat("mail ", std::string(field), ": control character (CR/LF) not allowed"));
  }
  return absl::OkStatus();
}

// LF or CRLF (or a lone CR) line ends, all made CRLF: a text/plain body's canonical form
// before base64 (RFC 2046 4.1.1).
std::string ToCrlf(std::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 32);
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\r') {
      out.append("\r\n");
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
    } else if (c == '\n') {
      out.append("\r\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

bool IsValidMailbox(std::string_view a) {
  if (a.size() > 254) return false;
  const size_t at = a.rfind('@');
  if (at == std::string_view::npos) return false;
  return IsValidLocalPart(a.substr(0, at)) && IsValidHostName(a.substr(at + 1));
}

std::string EncodeWords(std::string_view text) {
  std::string out;
  while (!text.empty()) {
    size_t take = 0;
    while (take < text.size()) {
      size_t n = Utf8SequenceLength(text.substr(take));
      if (n == 0) n = 1;  // callers pass valid UTF-8; never loop forever on a bad byte
      if (take + n > kWordInputBytesMax) break;
      take += n;
    }
    if (!out.empty()) out.append("\r\n ");
    absl::StrAppend(&out, "=?UTF-8?B?", Base64(text.substr(0, take)), "?=");
    text.remove_prefix(take);
  }
  return out;
}

absl::StatusOr<std::string> ComposeMessage(const MailMessage& m, absl::Time date) {
  if (!IsValidMailbox(m.from)) return absl::InvalidArgumentError("mail from: not a valid address");
  if (!IsValidMailbox(m.to)) return absl::InvalidArgumentError("mail to: not a valid address");
  if (absl::Status s = CheckText("from name", m.from_name, kMailFromNameBytesMax); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckText("subject", m.subject, kMailSubjectBytesMax); !s.ok()) return s;
  if (m.subject.empty()) return absl::InvalidArgumentError("mail subject: empty");
  if (!IsValidId(m.id)) return absl::InvalidArgumentError("mail id: want [A-Za-z0-9._-]{1,64}");
  if (m.body.size() > kMailBodyBytesMax) {
    return absl::InvalidArgumentError("mail body: too long");
  }
  if (!IsValidUtf8(m.body)) return absl::InvalidArgumentError("mail body: not UTF-8");
  if (HasControl(m.body, true)) {
    return absl::InvalidArgumentError("mail body: control character");
  }

  const std::string domain = m.from.substr(m.from.rfind('@') + 1);
  std::string out;
  out.reserve(m.body.size() * 4 / 3 + 1024);
  absl::StrAppend(
      &out, "Date: ", absl::FormatTime("%a, %d %b %Y %H:%M:%S +0000", date, absl::UTCTimeZone()),
      "\r\n");
  absl::StrAppend(&out, "Message-ID: <", m.id, "@", domain, ">\r\n");
  if (m.from_name.empty()) {
    absl::StrAppend(&out, "From: ", m.from, "\r\n");
  } else {
    // Always encoded: a display name with specials ("," "<" ...) needs no quoting then. The
    // address goes on a folded line of its own, so no line grows past 78.
    absl::StrAppend(&out, "From: ", EncodeWords(m.from_name), "\r\n <", m.from, ">\r\n");
  }
  absl::StrAppend(&out, "To: ", m.to, "\r\n");
  const bool plain = IsPlainAscii(m.subject) && m.subject.size() <= kPlainSubjectBytesMax &&
                     m.subject.find("=?") == std::string::npos;
  absl::StrAppend(&out, "Subject: ", plain ? m.subject : EncodeWords(m.subject), "\r\n");
  out.append(
      "MIME-Version: 1.0\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: base64\r\n"
      "\r\n");
  const std::string b64 = Base64(ToCrlf(m.body));
  for (size_t i = 0; i < b64.size(); i += kBodyLineChars) {
    out.append(b64, i, kBodyLineChars);
    out.append("\r\n");
  }
  return out;
}

}  // namespace kv::outbound
