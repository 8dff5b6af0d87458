// Finding and parsing a request head (request line + header fields) in an I/O loop's input
// buffer, before anything else about the request is decided (issue 11).
//
// The I/O loop needs the head for three decisions it must take without a worker: where the
// head ends (and whether it is within the size and line limits), how the body is framed
// (Content-Length / Transfer-Encoding), and the screen (route, auth, rate limit, body
// limit — server.cc, Screen) that must run before one byte of the body is read. cpp-httplib
// 0.11.4 exposes no head parser (its parser is private to process_request), so this is a
// small strict one: a worker then parses the same bytes again with cpp-httplib, and the
// server refuses the request if the two disagree on the method or the path (no parser
// differential can bypass a screen decision).
#pragma once

#include <cstddef>
#include <string_view>

#include "httplib.h"

namespace kv::http {

enum class HeadScan {
  kComplete,      // buf[*skip, *skip + *head_len) is a whole head, the empty line included
  kNeedMore,      // no end yet, within the limits
  kTooLarge,      // more than max_bytes before (or including) the end of the head
  kTooManyLines,  // more than max_lines header lines
};

// Resumable scan state of one head (reset for every request).
struct HeadScanState {
  size_t scanned = 0;  // bytes of the head already looked at
  size_t lines = 0;    // CRLF-terminated lines seen, the request line included
};

// Looks for the end of the head (CRLF CRLF; bare LF never ends a head) in `buf`, after
// skipping empty lines before the request line (RFC 9112 §2.2): *skip is the number of such
// bytes. Resumes from *st, so bytes arriving one at a time are each looked at once.
// max_bytes / max_lines: 0 = no limit.
HeadScan ScanHead(std::string_view buf, HeadScanState* st, size_t max_bytes, size_t max_lines,
                  size_t* skip, size_t* head_len);

// Parses a complete head into req->method, target, path (percent-decoded as cpp-httplib
// does), version and headers. False when it is not a well-formed HTTP/1.0 or 1.1 head:
// the request line is not METHOD SP TARGET SP HTTP/1.x, a field line has no colon, a name
// that is not a token, or starts with whitespace (obsolete folding).
bool ParseHead(std::string_view head, httplib::Request* req);

}  // namespace kv::http
