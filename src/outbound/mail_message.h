// A buyer's mail as RFC 5322 / MIME text (issue 14): the bytes libcurl's SMTP client uploads.
//
//   Date: Thu, 03 Dec 2026 22:06:22 +0000
//   Message-ID: <ID@DOMAIN-OF-FROM>
//   From: =?UTF-8?B?...?=                         (just the address when from_name is empty)
//    <shop@example.com>
//   To: buyer@example.com
//   Subject: Your order 0011...                    (=?UTF-8?B?...?= words, folded, when it is
//                                                   not plain printable ASCII)
//   MIME-Version: 1.0
//   Content-Type: text/plain; charset=utf-8
//   Content-Transfer-Encoding: base64
//
//   <the body, line ends made CRLF, base64 in lines of 76>
//
// Every line ends in CRLF. The body is base64 so that a key's bytes arrive exactly (no line
// length, trailing space or dot-stuffing question can touch them) and no body line can begin
// with "." (libcurl dot-stuffs the upload anyway: lib/smtp.c, smtp_escape_eob).
// Header injection is impossible: a CR, LF or any other control character in a header field
// is refused, never stripped; addresses are validated (below).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kv::outbound {

// Bounds on what is composed.
inline constexpr size_t kMailSubjectBytesMax = 512;
inline constexpr size_t kMailFromNameBytesMax = 256;
inline constexpr size_t kMailBodyBytesMax = size_t{4} << 20;  // 4 MiB of text
inline constexpr size_t kMailIdBytesMax = 64;

struct MailMessage {
  std::string from;       // addr-spec (IsValidMailbox)
  std::string from_name;  // display name, UTF-8; may be empty
  std::string to;         // addr-spec (IsValidMailbox)
  std::string subject;    // UTF-8, no control characters
  std::string body;       // UTF-8 text; LF or CRLF line ends; tabs allowed
  // The Message-ID's left part: [A-Za-z0-9._-]{1,64}. Stable across retries (e.g. derived
  // from the delivery-log event id) so that a mail sent twice is recognisably the same.
  std::string id;
};

// A plain internet mailbox: dot-atom local part (1..64 bytes of RFC 5322 atext and single
// inner dots) "@" a host name of at least two labels (letters, digits, inner hyphens; each
// 1..63, in all at most 253), at most 254 bytes. No quoted local parts, no address
// literals, no comments or display names, no non-ASCII (SMTPUTF8): an address outside this
// set is refused rather than guessed at.
bool IsValidMailbox(std::string_view address);

// The message text, or InvalidArgument naming the field: an address that is not
// IsValidMailbox, a control character (CR and LF included) in from_name or subject,
// malformed UTF-8, an empty subject, a bad id, or a field over its bound.
absl::StatusOr<std::string> ComposeMessage(const MailMessage& message, absl::Time date);

// Exposed for tests: `text` as RFC 2047 "B" encoded words (UTF-8), each at most 60
// characters (36 bytes of text) and never splitting a character, joined by CRLF SP (a
// folded header).
std::string EncodeWords(std::string_view text);

}  // namespace kv::outbound
