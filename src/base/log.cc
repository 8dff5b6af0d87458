#include "base/log.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <iterator>

#include "base/clock.h"
#include "base/time_format.h"
#include "base/utf8.h"

namespace kv {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

constexpr std::string_view kLevelNames[] = {"debug", "info", "warn", "error"};
constexpr std::string_view kEllipsis = "...";

void AppendHexByte(std::string* out, uint8_t b) {
  static constexpr char kHex[] = "0123456789abcdef";
  const char esc[4] = {'\\', 'x', kHex[b >> 4], kHex[b & 0xf]};
  out->append(esc, sizeof esc);
}

// Appends the escaped form of the character at the start of `rest` (non-empty): a
// well-formed UTF-8 sequence, or else one byte. Returns the input bytes it took.
size_t AppendEscapedChar(std::string* out, std::string_view rest) {
  char32_t cp = 0;
  const size_t len = Utf8SequenceLength(rest, &cp);
  if (len == 0) {
    AppendHexByte(out, static_cast<uint8_t>(rest[0]));
    return 1;
  }
  if (cp == '\n') {
    out->append("\\n");
  } else if (cp == '\r') {
    out->append("\\r");
  } else if (cp == '\t') {
    out->append("\\t");
  } else if (cp == '\\') {
    out->append("\\\\");  // so that a literal "\n" in a message cannot pass for an escape
  } else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
    // Terminals act on C1 controls too (U+009B is CSI), so they go out as their bytes.
    for (size_t i = 0; i < len; ++i) AppendHexByte(out, static_cast<uint8_t>(rest[i]));
  } else {
    out->append(rest.data(), len);
  }
  return len;
}

// Appends `message` escaped in at most `budget` (>= 3) bytes: all of it if it fits, else
// the longest run of whole characters that leaves room for "...", then "...". Stops
// escaping once the budget is exceeded, so a huge message costs no more than a long one.
void AppendBounded(std::string* out, std::string_view message, size_t budget) {
  const size_t start = out->size();
  size_t fit = start;  // where "..." goes if the message turns out too long
  for (size_t i = 0; i < message.size();) {
    i += AppendEscapedChar(out, message.substr(i));
    const size_t used = out->size() - start;
    if (used > budget) {
      out->resize(fit);
      out->append(kEllipsis);
      return;
    }
    if (used + kEllipsis.size() <= budget) fit = out->size();
  }
}

// One write(2) in the normal case; a short write (a signal, a full disk) is continued
// rather than lost, at the price of atomicity for that line.
void WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

bool ParseLogLevel(std::string_view text, LogLevel* out) {
  for (size_t i = 0; i < std::size(kLevelNames); ++i) {
    if (text == kLevelNames[i]) {
      *out = static_cast<LogLevel>(i);
      return true;
    }
  }
  return false;
}

std::string_view LogLevelName(LogLevel level) {
  const auto i = static_cast<size_t>(level);
  return i < std::size(kLevelNames) ? kLevelNames[i] : "unknown";
}

void SetLogLevel(LogLevel level) {
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load(std::memory_order_relaxed)); }

bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void Log(LogLevel level, std::string_view message) {
  if (!LogEnabled(level)) return;
  std::string line = FormatRfc3339Millis(RealClock::Get()->WallNow());
  line.push_back(' ');
  line.append(LogLevelName(level));
  line.append(" keyvend: ");
  // The prefix is about 40 bytes; the guard only keeps the arithmetic safe.
  const size_t reserved = line.size() + 1;  // the prefix and '\n'
  const size_t budget = reserved + kEllipsis.size() <= kLogLineBytesMax
                            ? kLogLineBytesMax - reserved
                            : kEllipsis.size();
  line.reserve(line.size() + std::min(budget, message.size()) + 1);
  AppendBounded(&line, message, budget);
  line.push_back('\n');
  WriteAll(STDERR_FILENO, line);
}

}  // namespace kv
