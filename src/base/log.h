// The process log: leveled operator messages on standard error, one line each,
//   2026-11-21T15:04:05.123Z warn keyvend: delivery failed for 3 orders
// (UTC with milliseconds, level, "keyvend:", the message). Not the access log
// (src/http/access_log.h), which records requests.
//
//   KV_LOG(kWarn, "delivery failed for ", n, " orders");
//
// Every line is written with one write(2) to fd 2 and is at most kLogLineBytesMax bytes,
// which is PIPE_BUF: lines from different threads never interleave, even through a pipe.
// The message is escaped so that it can never end a line or forge another one: control
// characters (C0, DEL and the UTF-8 encoded C1 range U+0080..U+009F) become \n, \r, \t or
// \xNN (the bytes), a backslash becomes \\, and bytes that are not well-formed UTF-8
// become \xNN. A message whose escaped form does not fit is cut at a character boundary
// and ends in "...". Never log a card key or a secret.
#pragma once

#include <limits.h>

#include <cstddef>
#include <cstdlib>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace kv {

enum class LogLevel { kDebug = 0, kInfo, kWarn, kError };

// The longest line Log() writes, '\n' included. PIPE_BUF makes one write(2) atomic even on
// a pipe (POSIX); a longer line could be split by a concurrent writer.
inline constexpr size_t kLogLineBytesMax = 4096;
static_assert(kLogLineBytesMax <= PIPE_BUF);

// "debug" | "info" | "warn" | "error" (lowercase, exactly). On success sets *out and
// returns true; otherwise returns false and leaves *out untouched.
bool ParseLogLevel(std::string_view text, LogLevel* out);
// The name ParseLogLevel accepts for level.
std::string_view LogLevelName(LogLevel level);

// The least severe level written, for the whole process; kInfo until set. Thread-safe
// (an atomic; a change is seen by other threads soon, not at once).
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// Whether a message at `level` would be written now.
bool LogEnabled(LogLevel level);

// Writes one line for `message` to fd 2 if LogEnabled(level); see the top of this file for
// the line's form. A failed write is ignored (there is nowhere left to report it).
// Thread-safe; async-signal-unsafe (it allocates).
void Log(LogLevel level, std::string_view message);

namespace log_internal {
// absl::StrCat over KV_LOG's arguments. Debian's abseil has its own string_view that
// std::string_view does not convert to, so those are converted here.
template <typename T>
decltype(auto) Arg(const T& v) {
  if constexpr (std::is_same_v<T, std::string_view>) {
    return absl::string_view(v.data(), v.size());
  } else {
    return (v);  // a reference to the caller's argument, no copy
  }
}
template <typename... Args>
std::string Cat(const Args&... args) {
  return absl::StrCat(Arg(args)...);
}
}  // namespace log_internal

}  // namespace kv

// KV_LOG(kWarn, "delivery failed for ", n, " orders"): logs the absl::StrCat of the
// arguments (std::string_view accepted too) at kv::LogLevel::kWarn. The arguments are
// evaluated only when that level is enabled.
#define KV_LOG(level, ...)                                                    \
  do {                                                                        \
    if (::kv::LogEnabled(::kv::LogLevel::level)) {                            \
      ::kv::Log(::kv::LogLevel::level, ::kv::log_internal::Cat(__VA_ARGS__)); \
    }                                                                         \
  } while (0)

// KV_CHECK(cond, "why", ...): an invariant of OUR OWN state (never of outside input, which is
// validated and answered with an error). When it does not hold: logs the message at kError
// and aborts, in every build (TigerBeetle: assertions stay on in production).
#define KV_CHECK(cond, ...)                                                         \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      ::kv::Log(::kv::LogLevel::kError,                                             \
                ::kv::log_internal::Cat("check failed: " #cond ": ", __VA_ARGS__)); \
      ::abort();                                                                    \
    }                                                                               \
  } while (0)
