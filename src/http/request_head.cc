#include "http/request_head.h"

#include <cstring>

namespace kv::http {

HeadScan ScanHead(std::string_view buf, HeadScanState* st, size_t max_bytes, size_t max_lines,
                  size_t* skip, size_t* head_len) {
  size_t s = 0;
  while (buf.size() - s >= 2 && buf[s] == '\r' && buf[s + 1] == '\n') s += 2;
  *skip = s;
  const char* base = buf.data() + s;
  const size_t have = buf.size() - s;
  size_t i = st->scanned;
  for (; i + 1 < have; ++i) {
    if (base[i] != '\r' || base[i + 1] != '\n') continue;
    if (i >= 2 && base[i - 2] == '\r' && base[i - 1] == '\n') {
      *head_len = i + 2;  // the empty line ends the head
      if (max_bytes > 0 && *head_len > max_bytes) return HeadScan::kTooLarge;
      return HeadScan::kComplete;
    }
    ++st->lines;
    if (max_lines > 0 && st->lines > max_lines + 1) return HeadScan::kTooManyLines;
  }
  st->scanned = i;
  if (max_bytes > 0 && have > max_bytes) return HeadScan::kTooLarge;
  return HeadScan::kNeedMore;
}

namespace {

bool IsTokenChar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

std::string_view TrimOws(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

}  // namespace

bool ParseHead(std::string_view head, httplib::Request* req) {
  size_t eol = head.find("\r\n");
  if (eol == std::string_view::npos) return false;
  const std::string_view line = head.substr(0, eol);
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return false;
  const size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return false;
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  for (unsigned char c : method) {
    if (!IsTokenChar(c)) return false;
  }
  for (unsigned char c : target) {
    if (c <= 0x20 || c == 0x7f) return false;
  }
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return false;
  req->method.assign(method);
  req->target.assign(target);
  req->version.assign(version);
  const size_t q = target.find('?');
  req->path = httplib::detail::decode_url(std::string(target.substr(0, q)), false);
  if (q != std::string_view::npos) {
    httplib::detail::parse_query_text(std::string(target.substr(q + 1)), req->params);
  }
  size_t pos = eol + 2;
  while (pos < head.size()) {
    eol = head.find("\r\n", pos);
    if (eol == std::string_view::npos) return false;
    if (eol == pos) break;  // the empty line
    const std::string_view field = head.substr(pos, eol - pos);
    pos = eol + 2;
    const size_t colon = field.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    const std::string_view name = field.substr(0, colon);
    for (unsigned char c : name) {
      if (!IsTokenChar(c)) return false;  // also refuses folding and "Name :"
    }
    const std::string_view value = TrimOws(field.substr(colon + 1));
    for (unsigned char c : value) {
      if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
    }
    req->headers.emplace(std::string(name), std::string(value));
  }
  return true;
}

}  // namespace kv::http
